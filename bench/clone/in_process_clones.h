#pragma once
// Clones of one snapshot spawned inside this process through the library
// (Vm::clone_from(dir) and Vm::clone_from(pool)), the way a sandbox service embedding microvm
// would, timed from the call to the clone existing, its first KVM_RUN and its guest's first
// boot-marker write. Every clone runs until its guest marks, then is stopped and freed.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::bench {

struct InProcessCloneTimes {
  std::vector<double> clone_ms;          // the clone_from() call
  std::vector<double> first_kvm_run_ms;  // call -> first KVM_RUN
  std::vector<double> guest_marker_ms;   // call -> the guest's first boot-marker write
};

struct InProcessCloneOptions {
  unsigned count = 100;
  // 0: Vm::clone_from(dir). Otherwise a ClonePool of this size, full before each clone (the
  // latency a spawner sees when it spawns no faster than the pool refills).
  unsigned pool_size = 0;
};

[[nodiscard]] Result<InProcessCloneTimes> time_in_process_clones(const std::string& snapshot_dir,
                                                                 const InProcessCloneOptions& options);

// What `count` pooled clones running at once add to this process, per clone: Private_Dirty
// of the guest-RAM mappings (pages the guests wrote) and of the whole process (also the
// VMM's heap and thread stacks for the clone), measured against the process with the pool
// full and no clone running.
struct InProcessCloneMemory {
  double guest_ram_private_dirty_kib = 0;
  double process_private_dirty_kib = 0;
};
[[nodiscard]] Result<InProcessCloneMemory> measure_in_process_clone_memory(const std::string& snapshot_dir,
                                                                           unsigned count);

}  // namespace microvm::bench
