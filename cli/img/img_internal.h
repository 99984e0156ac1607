#pragma once
// Shared pieces of the img subcommands: a small argument scanner, format probing for
// read-only inspection, and the progress bar.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/block/disk_options.h"
#include "devices/block/disk_spec.h"

namespace microvm::img {

struct Args {
  std::map<std::string, std::string> opts;  // "-f" -> "qcow2", "--json" -> ""
  std::vector<std::string> positional;
  bool has(const std::string& k) const { return opts.count(k) != 0; }
  std::string get(const std::string& k, const std::string& dflt = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? dflt : it->second;
  }
};

// `with_value` lists the options that take an argument; anything else starting with '-' is a flag.
// Unknown options are errors (listed in `known`). Negative sizes ("-1G") after "--" or as the
// last positional of resize are handled by the caller through `allow_negative_positional`.
[[nodiscard]] Result<Args> scan_args(int argc, char** argv, const std::vector<std::string>& with_value,
                                     const std::vector<std::string>& flags, bool allow_negative_positional = false);

// Reads the first bytes: "qcow2" if the qcow2 magic is there, else "raw". Only for read-only use.
[[nodiscard]] Result<DiskFormat> probe_format(const std::string& path);
[[nodiscard]] Result<DiskFormat> format_arg(const Args& a, const char* key, const std::string& path);

// "-o cluster_size=64k,compat=0.10,..." into a map.
[[nodiscard]] Result<std::map<std::string, std::string>> parse_o(const std::string& s);

class Progress {
 public:
  Progress(bool enabled) : enabled_(enabled) {}
  void update(uint64_t done, uint64_t total);
  void finish();

 private:
  bool enabled_;
  int last_ = -1;
};

int cmd_create(int argc, char** argv);
int cmd_info(int argc, char** argv);
int cmd_check(int argc, char** argv);
int cmd_resize(int argc, char** argv);
int cmd_convert(int argc, char** argv);
// Subcommands added for qemu-img parity (one file each).
int cmd_info_chain(int argc, char** argv);
int cmd_map(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_check_repair(int argc, char** argv);
int cmd_commit(int argc, char** argv);
int cmd_rebase(int argc, char** argv);

void print_error(const std::string& msg);

}  // namespace microvm::img
