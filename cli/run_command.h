#pragma once
// `microvm run`: command-line arguments -> VmConfig -> Vm::create -> run.
#include <string>
#include <vector>

#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm {

struct RunOptions {
  VmConfig vm;
  bool boot_timer = false;
  // SIGTERM presses the ACPI power button and stops after this many seconds; 0: stop at once.
  unsigned shutdown_timeout_s = 0;
  std::string api_sock;  // serve the REST API here (api/README.md)
  bool no_api = false;
  std::string config_file;  // Firecracker's JSON config: the VM starts at once from it
  std::string restore_dir;  // --restore: start from this snapshot instead of a kernel
  bool clone = false;            // --clone
  bool restore_prefault = false; // --restore-prefault
  std::vector<std::string> notes;  // QEMU spellings that were rewritten (printed on stderr)
};

// The Vm the options describe: Vm::restore() with --restore, else Vm::create().
[[nodiscard]] Result<std::unique_ptr<Vm>> create_vm(const RunOptions& opts);

// Parses `microvm run ...` arguments (argv[0] is "run"). Help requests come back as an
// Error with code 0 and the help text, so the caller prints it and exits 0.
[[nodiscard]] Result<RunOptions> parse_run_args(int argc, const char* const* argv);

// Parses one --disk value: PATH,format=raw|qcow2[,readonly=on][,cache=none|writeback][,serial=S][,backing=F].
[[nodiscard]] Result<DiskConfig> parse_disk_arg(const std::string& spec);

int run_command(int argc, char** argv);

// Reads opts.config_file (Firecracker's JSON) into opts.vm, validated as the API would.
[[nodiscard]] Result<void> apply_config_file(RunOptions& opts);

// SIGTERM/SIGINT/SIGHUP/SIGQUIT: restore the terminal, stop the running Vm (run_vm) and
// set the flag termination_requested() reads.
void install_termination_handlers();
bool termination_requested();
// Runs `vm` on this thread with the terminal in raw mode; returns the process exit code.
int run_vm(Vm& vm, const RunOptions& opts);

}  // namespace microvm
