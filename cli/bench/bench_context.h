#pragma once
// Everything a scenario needs to know about the bench invocation: where the binaries and
// guest artifacts are, the guest shape, and a private scratch directory.
#include <chrono>
#include <cstdint>
#include <string>

namespace microvm::bench {

struct BenchContext {
  std::string microvm_binary;   // the VMM under test
  std::string qemu_binary;      // baseline VMM (qemu-system-x86_64)
  std::string strace_binary;    // used symmetrically for exec -> first KVM_RUN
  std::string kernel;           // guest kernel (ELF vmlinux)
  std::string cmdline;          // its command line
  std::string initrd;           // "" = the scenario builds its own
  std::string source_dir;       // for scripts/make-initramfs.sh
  std::string work_dir;         // scratch, removed at exit unless kept
  uint64_t memory_bytes = 512ull << 20;
  unsigned cpus = 1;
  // How long after spawn the running VMM's memory is sampled.
  std::chrono::milliseconds rss_sample_after{4000};
  // Upper bound for one boot to the userspace marker.
  std::chrono::milliseconds boot_timeout{600'000};
  bool verbose = false;
};

}  // namespace microvm::bench
