#pragma once
// Helpers for guest-mode workload scenarios (guest_blk, guest_net, guest_fs): build an
// initramfs holding host tools (with their shared libraries), boot it once under a VMM, and
// read the results the guest prints on the serial console as marked lines:
//   MVB <key> <value...>
// The guest script runs as /test.sh (scripts/make-initramfs.sh); /init prints
// "microvm-guest: test exit=<N>" after it and powers off.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/bench/bench_context.h"

namespace microvm::bench {

// An initramfs whose /test.sh is `script`, holding each of `binaries` (host path, same path in
// the guest) plus the libraries `ldd` lists, and `files` (host path -> guest path).
[[nodiscard]] Result<std::string> build_workload_initramfs(const BenchContext& ctx, const std::string& name,
                                                           const std::string& script,
                                                           const std::vector<std::string>& binaries,
                                                           const std::map<std::string, std::string>& files = {});

// What one guest run printed.
struct GuestRun {
  std::string console;  // the VMM's stdout, \r removed
  double seconds = 0;   // spawn -> exit
  int test_exit = -1;   // the script's exit code from the /init marker, -1 if missing
};

// Spawns `argv` (a VMM command line), waits until it exits or `timeout` passes, and returns the
// console text. Fails with the console's tail when the guest never printed the test-exit marker.
[[nodiscard]] Result<GuestRun> run_guest_workload(const BenchContext& ctx, const std::vector<std::string>& argv,
                                                  std::chrono::milliseconds timeout, const std::string& name);

// The console lines "MVB <key> <rest>" as key -> rest (the last one wins), whitespace-trimmed.
std::map<std::string, std::string> marked_values(const std::string& console);

// fio's terse (--minimal) line cut to fields 5-9,47-50 (the guest's `cut -d';' -f5-9,47-50`):
// error;read_kb;read_kib_s;read_iops;read_ms;write_kb;write_kib_s;write_iops;write_ms.
struct FioTerse {
  int error = 0;
  double read_kib_s = 0, read_iops = 0, write_kib_s = 0, write_iops = 0;
};
std::optional<FioTerse> parse_fio_terse_cut(const std::string& fields);

// The VMM command for a guest workload: the common shape (vmm_command) with `cpus` vCPUs, plus
// device arguments. QEMU runs as -M microvm with ACPI and PCIe so virtio-*-pci devices work,
// as microvm's PCI transport does.
std::vector<std::string> guest_workload_command(const BenchContext& ctx, std::string_view variant,
                                                const std::string& initrd, unsigned cpus,
                                                const std::vector<std::string>& device_args);

// The guest's vCPU count for workload scenarios: --cpus as given. (With 1 vCPU the shared test
// kernel now and then segfaults a short-lived process on hosts that emulate guest kernel mode,
// so the guest scripts retry a job whose tool died; 2 vCPUs avoid that but boot far slower
// there under load: vCPU threads starve each other's IPIs.)
unsigned workload_cpus(const BenchContext& ctx);

// The block I/O tool the guest runs. fio when its binary plus the libraries `ldd` lists stay
// under kMaxToolBytes (a static or lean fio); otherwise bench/guest/image/blkio.c, built
// statically here: Debian's fio pulls in ~80 MB of libraries (ceph, gluster, ICU data), which
// a guest whose kernel is emulated needs many minutes to unpack. MICROVM_BENCH_GUEST_IO=fio or
// =blkio forces one.
struct GuestIoTool {
  std::string name;             // "fio" or "blkio"
  std::string host_path;        // the binary on the host
  std::string guest_path;       // where /test.sh finds it
  bool with_libraries = false;  // copy the ldd closure too (fio)
  std::string why;              // one sentence for the report
};
inline constexpr uint64_t kMaxToolBytes = 32ull << 20;
[[nodiscard]] Result<GuestIoTool> choose_io_tool(const BenchContext& ctx);
// Sum of the sizes of `binary` and every library `ldd` lists for it.
[[nodiscard]] Result<uint64_t> ldd_closure_bytes(const BenchContext& ctx, const std::string& binary);
// Statically compiles bench/guest/image/<name>.c into the work directory; returns the binary.
[[nodiscard]] Result<std::string> build_guest_helper(const BenchContext& ctx, const std::string& name);

// Positive number from the environment, else `fallback`.
double env_positive(const char* name, double fallback);
// Rounds a positive value to the nearest whole number (std::lround would pull libm into the
// microvm binary for this alone).
inline long round_positive(double v) { return static_cast<long>(v + 0.5); }
std::string env_text(const char* name, const std::string& fallback);

}  // namespace microvm::bench
