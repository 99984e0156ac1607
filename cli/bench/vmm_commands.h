#pragma once
// Command lines for the VMMs under comparison, built the same way for every scenario so
// they get the same kernel, initrd, command line, memory and vCPU count.
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/bench/bench_context.h"
#include "cli/bench/child_process.h"

namespace microvm::bench {

// microvm run --kernel ... --initrd ... (console on stdout).
std::vector<std::string> microvm_command(const BenchContext& ctx, const std::string& initrd, bool boot_timer);
// qemu-system-x86_64 -M microvm with KVM, serial on stdout, no other devices. The CPU
// model follows shared/guest/README.md (-cpu host fails in QEMU 7.2 on this host).
std::vector<std::string> qemu_command(const BenchContext& ctx, const std::string& initrd);
// The x86 boot protocol's "HdrS" at 0x202: a bzImage, the only format kvmtool boots.
bool is_bzimage(const std::string& path);

// kvmtool (`lkvm run`) with the same kernel (a bzImage: kvmtool boots no other format), initrd,
// command line, memory and vCPUs, a serial console and a virtio-rng device like microvm's
// default set, and no network device (kvmtool would add a user-mode NIC by default).
std::vector<std::string> kvmtool_command(const BenchContext& ctx, const std::string& initrd);
std::vector<std::string> vmm_command(const BenchContext& ctx, std::string_view variant, const std::string& initrd,
                                     bool boot_timer);

// An uncompressed busybox initramfs (scripts/make-initramfs.sh) whose /test.sh is `script`.
[[nodiscard]] Result<std::string> build_initramfs(const BenchContext& ctx, const std::string& name,
                                                  const std::string& script);

// "microvm: boot-timer: first KVM_RUN at <us> us, ..." -> milliseconds.
std::optional<double> parse_boot_timer_first_run_ms(const std::string& stderr_text);

// Stops a VMM: SIGTERM to its group, SIGKILL after `grace`.
void stop(ChildProcess& child, std::chrono::milliseconds grace);

// Waits until `path` contains `needle` (polling), the child exits or `timeout` passes.
// Returns the time the needle was first seen.
std::optional<Clock::time_point> wait_for_output(ChildProcess& child, const std::string& path,
                                                 const std::string& needle, std::chrono::milliseconds timeout);

}  // namespace microvm::bench
