#pragma once
// A snapshot's state file read, decoded and cross-checked, with its memory file open:
// everything a restore builds a machine from, ready before KVM is touched.
//
// SnapshotCache keeps them between Vm::clone_from() calls, so that only the first clone of a
// snapshot in a process pays for reading, CRC-checking and decoding the state file and for
// the host CPU check; later clones only stat the two files to see that they are unchanged.
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "virtio/transport/device_snapshot.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/machine_state.h"

namespace microvm {

// Which file a path named when it was read. Writing a snapshot again renames a new state file
// into place (a new inode) and rewrites the memory file (a new mtime, often a new size).
struct FileIdentity {
  uint64_t dev = 0, ino = 0;
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
  static FileIdentity of(const struct stat& st);
};

struct LoadedSnapshot {
  std::string state_path;  // for messages
  snapshot::MachineState machine;
  std::vector<snapshot::VcpuState> vcpus;
  snapshot::VmKvmState vm;
  std::vector<DeviceState> devices;  // in the machine's device order
  std::vector<std::byte> uart;       // platform section 0; empty in snapshots without one
  std::string memory_path;
  Fd memory;  // read-only; every restore maps it privately itself (a clone's writes stay its own)
  FileIdentity state_file, memory_file;  // as read
};

// Reads and checks the state file (untrusted: every count, offset and CRC) against this host
// and opens the memory file. Errors name the file.
[[nodiscard]] Result<std::shared_ptr<const LoadedSnapshot>> load_snapshot(const std::string& state_path,
                                                                          const std::string& memory_path);

class SnapshotCache {
 public:
  // The one Vm::clone_from() uses.
  static SnapshotCache& process();

  // The snapshot in these files: the one loaded before while both paths still name the files
  // it was loaded from (device, inode, size and mtime), else loaded (and kept) anew.
  [[nodiscard]] Result<std::shared_ptr<const LoadedSnapshot>> get(const std::string& state_path,
                                                                  const std::string& memory_path);

 private:
  // Each entry holds its memory file open; a few snapshots cloned in turn stay cached.
  static constexpr size_t kMaxEntries = 4;
  std::mutex mu_;
  std::vector<std::shared_ptr<const LoadedSnapshot>> entries_;  // guarded by mu_; least recently used first
};

}  // namespace microvm
