#pragma once
// Linux tests that restore instead of boot. Booting the shared guest kernel costs 40-200 s on
// the emulating test host; restoring a snapshot of it costs about a second. The first test that
// asks boots the kernel once, to its interactive shell, with a fixed, generic device set (the
// "base"), snapshots it there, and keeps the snapshot under the build tree; every later test
// (in any test binary, until the kernel, the microvm binary or this harness changes) restores
// a copy-on-write clone of it with its own disks and runs its script through the serial console.
//
// The base machine: 2 vCPUs, 256 MiB, virtio-pci, virtio-rng, the serial console, and five
// disks, whose slots a restore fills with the test's own images (same size, same format and
// read-only flag as the slot, since the guest's driver already probed them):
//   vda  raw,   4 MiB, writable, serial "microvm-disk0"
//   vdb  raw,   1 MiB, read-only
//   vdc  qcow2, 8 MiB, read-only
//   vdd  qcow2, 6 MiB, writable
//   vde  raw,   2 MiB, read-only: the payload, a tar of /test.sh and the test's files, unpacked
//        by the restored guest (the initramfs cannot change after the boot).
// Before the snapshot the base guest leaves a trace to check consistency against: /tmp/base-nonce
// (tmpfs), /tmp/base-uptime, and "base-written-<nonce>" in sector 2040 of vda (O_DIRECT, synced).
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "tests/integration/support/vm_process.h"

namespace microvm::testing {

struct LinuxBaseSlot {
  std::string file;    // the base's own image of this slot, in the cache directory
  std::string format;  // raw or qcow2
  uint64_t bytes;      // virtual size
  bool read_only;
};

struct LinuxBase {
  std::string dir;                   // the snapshot: dir/state, dir/memory
  std::vector<LinuxBaseSlot> slots;  // vda..vdd (the payload slot vde is not listed)
  std::string nonce;                 // what the base guest wrote before the snapshot
  double boot_seconds = 0;           // the boot + snapshot that made it (0: found in the cache)
};

// The base snapshot, made now (one boot, under a lock shared by all test processes) or found
// in the cache: ${MICROVM_BUILD_DIR}/linux-snapshots/base-<key>, where the key covers the guest
// kernel, its command line, the microvm binary, scripts/make-initramfs.sh and the base's layout.
// MICROVM_LINUX_SNAPSHOT_DIR overrides the cache's parent directory; MICROVM_LINUX_SNAPSHOT_BASE=DIR
// uses a finished base directory as it is (no key, no boot).
[[nodiscard]] Result<LinuxBase> linux_base_snapshot();

struct RestoredLinuxOptions {
  std::string script;                                    // run as /test.sh by the restored guest
  std::vector<std::pair<std::string, std::string>> add;  // host file -> guest path (via the payload disk)
  // --disk specs for vda..vdd; an empty or missing entry gets a private copy of the base's image
  // (named dir/slotN.raw|qcow2), which the test may inspect afterwards.
  std::vector<std::string> disks;
  std::vector<std::string> extra_args;  // after `run --restore DIR --clone`
  std::chrono::seconds timeout{600};
};

// Restores a clone of the base (restore_base_snapshot) with the test's disks and payload in
// `dir`, types the line that unpacks the payload and runs /test.sh, and parses /init-style
// markers: "microvm-guest: userspace ready" once the restored shell took the line, then
// "microvm-guest: test exit=N"; the guest powers off after the script.
[[nodiscard]] Result<LinuxRun> run_linux_script_restored(const TempDir& dir, const RestoredLinuxOptions& options);

// Path of the private copy of slot `slot` run_linux_script_restored made in `dir`.
std::string restored_slot_copy(const TempDir& dir, size_t slot);

}  // namespace microvm::testing
