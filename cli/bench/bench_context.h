#pragma once
// Everything a scenario needs to know about the bench invocation: where the binaries and
// guest artifacts are, the guest shape, and a private scratch directory.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace microvm::bench {

struct BenchContext {
  std::string microvm_binary;  // the VMM under test
  std::string qemu_binary;     // baseline VMM (qemu-system-x86_64)
  std::string kvmtool_binary;  // baseline VMM for --compare kvmtool (lkvm), given by path
  std::string strace_binary;   // exec -> first KVM_RUN where tracefs is not usable (startup)
  std::string kernel;          // guest kernel (ELF vmlinux)
  std::string cmdline;         // its command line
  std::string initrd;          // "" = the scenario builds its own
  std::string source_dir;      // for scripts/make-initramfs.sh
  std::string work_dir;        // scratch, removed at exit unless kept
  // Extra arguments appended to every microvm / QEMU command line of the real-guest runs
  // (e.g. "--no-rng", "-cpu ..."), for experiments on what a difference costs.
  std::vector<std::string> microvm_extra_args;
  std::vector<std::string> qemu_extra_args;
  uint64_t memory_bytes = 512ull << 20;
  unsigned cpus = 1;
  // How long after spawn the running VMM's memory is sampled.
  std::chrono::milliseconds rss_sample_after{4000};
  // Upper bound for one boot to the userspace marker.
  std::chrono::milliseconds boot_timeout{600'000};
  bool verbose = false;
};

}  // namespace microvm::bench
