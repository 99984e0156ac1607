#pragma once
// `microvm run`: command-line arguments -> VmConfig -> Vm::create -> run.
#include <string>
#include <vector>

#include "cli/fat_image.h"
#include "microvm/result.h"
#include "microvm/vm.h"
#include "vmm/sandbox/jail.h"

namespace microvm {

struct RunOptions {
  VmConfig vm;
  bool boot_timer = false;
  // SIGTERM presses the ACPI power button and stops after this many seconds; 0: stop at once.
  unsigned shutdown_timeout_s = 0;
  std::string api_sock;  // serve the REST API here (api/README.md)
  bool no_api = false;
  std::string config_file;     // Firecracker's JSON config: the VM starts at once from it
  std::string metrics_path;    // with api_sock: JSON metrics lines (PUT /metrics before start)
  std::string append;          // --append: added to the end of the kernel command line
  bool cmdline_given = false;  // --cmdline was on the command line (it replaces a disk entry's line)
  // No --kernel but a --disk: the kernel, initrd and command line come from inside the first disk.
  bool boot_from_disk = false;
  bool print_boot = false;  // --print-boot: show what boot_from_disk found and exit
  // --jail on|off: the VMM runs in namespaces, an empty root and as jail_uid/jail_gid
  // (vmm/sandbox/jail.h). On by default when microvm runs as root, off otherwise.
  bool jail = false;
  std::string jail_uid;     // empty: nobody
  std::string jail_gid;     // empty: the user's group, else nogroup (65534)
  std::string restore_dir;  // --restore: start from this snapshot instead of a kernel
  // --snapshot-dir: canonical absolute path; API snapshot files must be inside it (bound
  // read-write into the jail). Empty: any path without the jail, none with it.
  std::string snapshot_dir;
  bool clone = false;               // --clone
  bool restore_prefault = false;    // --restore-prefault
  std::vector<FatFile> cloud_init;  // --cloud-init: the NoCloud seed's files (empty: no seed)
  std::vector<std::string> notes;   // QEMU spellings that were rewritten (printed on stderr)
};

// The Vm the options describe: Vm::restore() with --restore, else Vm::create().
[[nodiscard]] Result<std::unique_ptr<Vm>> create_vm(const RunOptions& opts);

// Parses `microvm run ...` arguments (argv[0] is "run"). Help requests come back as an
// Error with code 0 and the help text, so the caller prints it and exits 0.
[[nodiscard]] Result<RunOptions> parse_run_args(int argc, const char* const* argv);

// Parses one --disk value: PATH,format=raw|qcow2[,readonly=on][,cache=none|writeback][,serial=S][,backing=F].
[[nodiscard]] Result<DiskConfig> parse_disk_arg(const std::string& spec);

int run_command(int argc, char** argv);

// boot_from_disk: reads the boot entry from the first disk into opts.vm (kernel and initrd bytes,
// command line). With opts.print_boot, prints what it found instead of loading the files.
[[nodiscard]] Result<void> resolve_disk_boot(RunOptions& opts);
// Parses --rng's value: bps=N[,bps_burst=N][,iops=N][,iops_burst=N].
[[nodiscard]] Result<IoLimit> parse_rng_arg(const std::string& spec);

// The jail's settings for these options: the user and group resolved, and, when the command
// line describes the whole VM, what its devices need (jail_fit_to_vm). A VM configured
// through the API is fitted once InstanceStart names its devices; a restored one keeps the
// host's network and gets what any device might need.
[[nodiscard]] Result<JailOptions> jail_options_for(const RunOptions& opts);
// What the VM's devices need from the jail: a network namespace only without --net (else
// the host's), resolv.conf copied in for user networking, CAP_KILL kept for virtiofsd, room
// under RLIMIT_NOFILE for slirp's sockets, the --vsock socket's directory bound in.
void jail_fit_to_vm(JailOptions& j, const VmConfig& vm);
// A relative --vsock socket path made absolute against the working directory (the jail's
// is its empty root).
void absolute_vsock_path(VmConfig& vm);
// The same for a VM restored from a snapshot, whose devices are not known here: whatever any
// device might need, and the directory of a --vsock socket given to replace the snapshot's.
void jail_fit_to_restore(JailOptions& j, const VmConfig& vm);
// Binds the directory of a vsock socket path into the jail (guest connections to host port P
// open PATH_P after the jail closed).
void bind_vsock_dir(JailOptions& j, const std::string& path);

// Reads opts.config_file (Firecracker's JSON) into opts.vm, validated as the API would.
[[nodiscard]] Result<void> apply_config_file(RunOptions& opts);

// SIGTERM/SIGINT/SIGHUP/SIGQUIT: restore the terminal, stop the running Vm (run_vm) and
// set the flag termination_requested() reads.
void install_termination_handlers();
bool termination_requested();
// Runs `vm` on this thread with the terminal in raw mode; returns the process exit code.
int run_vm(Vm& vm, const RunOptions& opts);

}  // namespace microvm
