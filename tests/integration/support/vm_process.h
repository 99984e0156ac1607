#pragma once
// Integration-test harness: runs the real `microvm` binary as a child process with a
// wall-clock limit, captures stdout/stderr, and locates the guest artifacts (firmware
// built here, the shared test kernel, an initramfs built on demand).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace microvm::testing {

struct VmRunOptions {
  std::chrono::milliseconds timeout{60'000};
  // Written to the child's stdin right after start.
  std::string stdin_data;
  // Then, in order: once stdout contains .first (searched after the previous match),
  // .second is written to stdin. Lets a test answer a shell prompt.
  std::vector<std::pair<std::string, std::string>> interactions;
  // Close stdin once everything above was written (otherwise it stays open until exit,
  // so the VMM never sees EOF on the console).
  bool close_stdin_when_done = false;
  // Give the child a pseudo-terminal (raw mode) as stdin instead of a pipe, so it sees
  // a tty: microvm only honours the C-a escapes on a terminal.
  bool stdin_pty = false;
  // run_microvm only: repeat the run once if the guest kernel reports a user-space segfault
  // (an intermittent fault of the emulating test host, see ../shared/guest/README.md).
  bool retry_on_guest_segfault = true;
  // Extra environment entries ("NAME=value") on top of the inherited environment.
  std::vector<std::string> env;
  // Called with all of stdout so far after each new piece of it; returning true ends the run
  // there (SIGKILL to the child's process group; not counted as a timeout). Lets a test act on
  // the host (take a snapshot) at a point the guest reached, then stop the VM.
  std::function<bool(const std::string& out)> on_output;
  // Set by the run when on_output ended it.
  bool* ended_by_on_output = nullptr;
};

struct VmRunResult {
  int exit_code = -1;   // exit status if the process exited normally, else -1
  int term_signal = 0;  // signal that ended it (SIGKILL after a timeout), else 0
  bool timed_out = false;
  std::string out;      // stdout (the guest's serial console)
  std::string err;      // stderr (VMM logs, register dumps)
  double seconds = 0;   // wall-clock run time
  std::string command;  // the command line, for messages

  // One paragraph for assertion messages: command, exit, timing, tails of both streams.
  std::string describe(size_t tail_bytes = 3000) const;
  // Lines of stdout starting with `prefix`, with '\r' and APC escape sequences (the
  // console boot marker) stripped.
  std::vector<std::string> lines_with_prefix(std::string_view prefix) const;
};

// Runs `binary args...`; never throws. A failure to start shows up as exit_code 127
// with the reason in `err`.
VmRunResult run_process(const std::string& binary, const std::vector<std::string>& args,
                        const VmRunOptions& options = {});
// Whether a guest's console shows a user process dying of SIGSEGV: the kernel's "segfault at"
// report, or busybox sh's own line when `quiet` hides the kernel's.
bool guest_reported_segfault(const std::string& out);

// Runs the microvm binary built with the tests (MICROVM_BINARY; env MICROVM_BINARY overrides).
VmRunResult run_microvm(const std::vector<std::string>& args, const VmRunOptions& options = {});

std::string microvm_binary();
std::string source_dir();
std::string build_dir();
// ${MICROVM_BUILD_DIR}/firmware/<name>.
std::string firmware_path(std::string_view name);
// The shared guest kernel folder: env MICROVM_GUEST_DIR, else ${MICROVM_SOURCE_DIR}/../shared/guest.
std::string guest_dir();
std::string guest_kernel();   // guest_dir()/vmlinux
std::string guest_cmdline();  // guest_dir()/cmdline, one line, whitespace trimmed ("" if missing)

// Empty if /dev/kvm can be opened read-write, else a sentence saying why not.
std::string kvm_unavailable_reason();

// A private directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `bytes` to path()/name and returns the full path ("" on failure).
  std::string write_file(std::string_view name, std::string_view bytes, bool executable = false) const;

 private:
  std::string path_;
};

struct InitramfsSpec {
  std::string script;                                    // /test.sh contents ("" = interactive shell)
  std::vector<std::pair<std::string, std::string>> add;  // host file -> guest path
  bool boot_marker = true;                               // include firmware/boot_marker
};
// Builds an uncompressed initramfs with scripts/make-initramfs.sh into `dir`.
[[nodiscard]] Result<std::string> make_initramfs(const TempDir& dir, const InitramfsSpec& spec);

// Booting the shared Linux test kernel with a script as /test.sh.
struct LinuxOptions {
  int cpus = 2;  // the shared kernel's README: 1 vCPU shows sporadic user-space segfaults
  std::string memory = "256M";
  std::string extra_cmdline;                             // appended to guest_cmdline()
  std::vector<std::string> extra_args;                   // e.g. {"--disk", "img,format=raw"}
  std::vector<std::pair<std::string, std::string>> add;  // host file -> guest path
  std::chrono::seconds timeout{600};
};
struct LinuxRun {
  VmRunResult run;
  bool userspace_ready = false;  // "microvm-guest: userspace ready" seen
  std::optional<int> test_exit;  // N from "microvm-guest: test exit=N"
};
// Builds an initramfs around `script`, boots guest_kernel() with it, and parses the
// markers /init prints. Fails only if the initramfs cannot be built.
[[nodiscard]] Result<LinuxRun> run_linux_script(const std::string& script, const LinuxOptions& options = {});

// A whole file's bytes ("" if it cannot be read).
std::string read_text_file(const std::string& path);
// What `sh -c cmd` prints on stdout; shell_line drops trailing newlines, like $(...).
std::string shell_output(const std::string& cmd);
std::string shell_line(const std::string& cmd);

// 32-bit FNV-1a, the hash boot_check prints for the initrd.
uint32_t fnv1a32(std::string_view bytes);

}  // namespace microvm::testing

// Fails the current test (never skips) when /dev/kvm is unusable.
#define REQUIRE_KVM()                                                                \
  do {                                                                               \
    std::string kvm_reason_ = ::microvm::testing::kvm_unavailable_reason();          \
    ASSERT_TRUE(kvm_reason_.empty()) << "this test needs /dev/kvm: " << kvm_reason_; \
  } while (0)
