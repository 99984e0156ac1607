#pragma once
// Reads the text of a tracefs instance that recorded syscalls:sys_{enter,exit}_execve and
// syscalls:sys_{enter,exit}_ioctl with options/record-tgid, e.g.
//   "   lkvm-22947   (  22947) [001] ..... 80003.684571: sys_ioctl(fd: 3, cmd: 0xae01, arg: 0)"
//   "   lkvm-22947   (  22947) [000] ..... 80003.688085: sys_ioctl -> 0x0"
// and finds, for one process, its execve, its first KVM_RUN (any thread) and how long its
// threads sat inside the KVM set-up ioctls before that. The text comes from the kernel but
// its task names are chosen by the traced program, so malformed lines are skipped, never
// trusted.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace microvm::bench {

// ioctl numbers as the kernel prints them (cmd is unsigned; the bench does not include
// linux/kvm.h, only vmm/ does; tests/integration/bench_parsers_test.cc checks the values).
inline constexpr uint32_t kIoctlKvmRun = 0xae80;
inline constexpr uint32_t kIoctlKvmCreateVm = 0xae01;
inline constexpr uint32_t kIoctlKvmCreateVcpu = 0xae41;
inline constexpr uint32_t kIoctlKvmCreateIrqchip = 0xae60;
inline constexpr uint32_t kIoctlKvmCreatePit2 = 0x4040ae77;
inline constexpr uint32_t kIoctlKvmSetUserMemoryRegion = 0x4020ae46;
inline constexpr uint32_t kIoctlKvmSetUserMemoryRegion2 = 0x40a0ae49;
// The calls whose time is the host KVM's (VM, irqchip, PIT, memslot and vCPU creation).
inline constexpr uint32_t kKvmSetupIoctls[] = {
    kIoctlKvmCreateVm,   kIoctlKvmCreateVcpu,          kIoctlKvmCreateIrqchip,
    kIoctlKvmCreatePit2, kIoctlKvmSetUserMemoryRegion, kIoctlKvmSetUserMemoryRegion2};

struct IoctlSpan {
  pid_t tid = 0;
  uint32_t cmd = 0;
  double enter = 0, exit = 0;  // trace clock, seconds
};

struct KvmStartTrace {
  std::optional<double> execve;         // entry of the process's successful execve
  std::optional<double> first_kvm_run;  // entry of its first KVM_RUN, any thread
  std::vector<IoctlSpan> setup_calls;   // completed set-up ioctls, in exit order
};

// `pid` is the process (thread-group id) of interest; `setup_cmds` the ioctls to pair.
KvmStartTrace parse_kvm_trace(std::string_view text, pid_t pid, std::span<const uint32_t> setup_cmds);

struct StartupSplit {
  double total_ms = 0;          // execve -> first KVM_RUN
  double kvm_blocked_ms = 0;    // time in that window when some thread was inside a set-up ioctl
  double kvm_ioctl_sum_ms = 0;  // the same calls' durations added up (overlaps counted twice)
  double own_ms = 0;            // total - kvm_blocked
};

// Needs execve and first_kvm_run; set-up calls are clipped to that window.
std::optional<StartupSplit> split_startup(const KvmStartTrace& trace);

}  // namespace microvm::bench
