#pragma once
// Parses a --share argument:
//   HOSTDIR[,tag=TAG][,readonly=on|off]     a host folder, served by a virtiofsd we start
//   socket=PATH,tag=TAG                     an already-running vhost-user-fs backend
// The folder must exist, be a directory and not be under /proc (sharing /proc/<pid>/root
// and friends would expose far more than a folder). The tag defaults to the folder's name.
#include <string>

#include "base/result.h"

namespace microvm {

struct ShareSpec {
  std::string host_dir;  // canonical path; empty for socket= shares
  std::string tag;       // 1..36 bytes
  bool read_only = false;
  std::string socket_path;        // empty for folder shares
  bool snapshot_remount = false;  // snapshot=remount: snapshots allowed, the share comes back reset
};

[[nodiscard]] Result<ShareSpec> parse_share_spec(const std::string& spec);

}  // namespace microvm
