#pragma once
// The embedding API. The `microvm` command line is a thin layer over exactly this.
//
//   microvm::VmConfig config;
//   config.kernel_path = "vmlinux";
//   config.cmdline = "console=ttyS0";
//   auto vm = microvm::Vm::create(config);     // everything is checked here
//   if (!vm) { report(vm.error().what); }
//   auto exit = (*vm)->run();                  // blocks until the guest stops
//
// Several Vm objects may exist in one process; they share nothing.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "microvm/log_sink.h"
#include "microvm/result.h"

namespace microvm {

struct DiskConfig {
  std::string path;
  std::string format;               // "raw" or "qcow2"; required, never probed
  bool read_only = false;
  std::string cache = "writeback";  // "none" (O_DIRECT) or "writeback"
  std::string serial;               // virtio-blk GET_ID, at most 20 bytes
  std::string backing;              // qcow2 overlays: the backing file, named explicitly
  std::string backing_format;       // "raw" or "qcow2"; empty: as recorded in the overlay
  bool trust_image_backing = false; // follow the backing file name stored in the image
  std::string engine = "auto";      // "auto" (io_uring, else sync), "io_uring" or "sync"
  unsigned queues = 1;              // virtio-blk request queues
};

// One virtio-net device (see README "Networking"). Exactly one of tap, bridge or user.
struct NetConfig {
  std::string tap;                    // tap interface: an existing one, or created (CAP_NET_ADMIN)
  std::string bridge;                 // create a tap and attach it to this bridge
  bool user = false;                  // user-mode networking (libslirp): 10.0.2.0/24, DHCP, DNS
  std::vector<std::string> hostfwd;   // user only: "tcp::HOSTPORT-:GUESTPORT" (binds 127.0.0.1) or "udp::..."
  bool host_loopback = false;         // user only: let the guest reach the host's 127.0.0.1 and 169.254/16
  bool restrict_to_forwards = false;  // user only: no outbound connections, only hostfwd (QEMU restrict=yes)
  uint32_t max_host_sockets = 256;    // user only: host sockets slirp may hold; more are refused and counted
  std::string mac;                    // empty: stable default derived from the interface name
  std::string vhost = "auto";         // tap only: "on", "off" or "auto" (fallback when unavailable)
};

// A host folder shared with the guest over virtio-fs (see README "Shared folders"). The
// guest mounts it with `mount -t virtiofs TAG /mnt`.
struct ShareConfig {
  std::string host_dir;     // the folder; microvm starts a virtiofsd for it
  std::string tag;          // at most 36 bytes; empty: the folder's name
  bool read_only = false;   // enforced below virtiofsd with a read-only bind mount
  std::string socket_path;  // instead of host_dir: an already-running vhost-user-fs backend
  // Allow snapshots: virtiofsd cannot migrate its state, so a restored guest sees the device
  // needing a reset and must mount the share again. Without it a snapshot is refused.
  bool snapshot_remount = false;
};

enum class Transport { kPci, kMmio };

struct VmConfig {
  std::string kernel_path;
  std::string initrd_path;                 // empty: none
  std::string cmdline = "console=ttyS0 reboot=k panic=-1";
  unsigned cpus = 1;
  uint64_t memory_bytes = 512ull << 20;
  bool hugepages = false;
  std::string cpu = "host";                // "host[,+feature|-feature...]"
  Transport transport = Transport::kPci;
  std::vector<DiskConfig> disks;
  std::vector<NetConfig> nets;             // virtio-net devices, in order
  bool rng = true;                         // a virtio-rng device
  std::vector<ShareConfig> shares;         // virtio-fs shared folders
  std::string virtiofsd_path;              // empty: virtiofsd on PATH, else /usr/lib/qemu/virtiofsd

  // Console: the UART reads `console_in` and writes `console_out`; -1 disconnects either.
  int console_in = 0;
  int console_out = 1;
  // Ctrl-A x stops the VM, Ctrl-A a sends a literal Ctrl-A (QEMU's escapes), when reading a terminal.
  bool console_escapes = true;

  // QEMU's pvpanic device (port 0x505, DSDT "QEMU0001"): a guest kernel panic ends run()
  // with kPanicked instead of whatever the guest does next (panic=-1 reboots). Off by
  // default: it changes what a panicking guest's exit looks like.
  bool pvpanic = false;

  // Called once per boot mark (first KVM_RUN, the guest's boot marker) when it happens,
  // with microseconds since creation (BootTimes), on the thread that saw it: a vCPU thread,
  // sandboxed like `log_sink`, so it must only write to already-open fds.
  std::function<void(const char* mark, uint64_t us)> on_boot_mark;

  LogSink log_sink;                        // empty: stderr
  LogLevel log_level = LogLevel::kWarn;

  // Seccomp sandbox (SECURITY.md): once set up, the device event loop runs on its own
  // thread ("vmm-loop") and it and every vCPU thread install a default-deny filter for
  // their role before doing any work. The thread that calls run() is not filtered unless
  // `sandbox_calling_thread` asks for it. A forbidden system call ends the process with
  // kExitSandbox and one line on stderr. With it on, `log_sink` may run on those threads:
  // it must only write to already-open fds.
  bool sandbox = true;
  // With `sandbox`: run() also filters the thread that called it, once the event loop and
  // the vCPUs have started, with the "supervisor" role (waiting, signal handlers, tear-down:
  // no path opened, no process started). For a program whose thread does nothing else
  // afterwards (the microvm CLI): the filter stays for the rest of that thread's life.
  bool sandbox_calling_thread = false;
};

enum class VmExitReason {
  kPowerOff,  // the guest powered off
  kReboot,    // the guest asked for a reset
  kCrash,     // triple fault, KVM internal error or an exit we cannot handle
  kStopped,   // Vm::stop() or the console escape
  kPanicked,  // the guest reported a kernel panic through pvpanic (VmConfig::pvpanic)
};

struct VmExit {
  VmExitReason reason = VmExitReason::kStopped;
  std::string detail;  // for kCrash: what happened and a register dump
};

// Where a Vm is in its life. kStopped is final: run() has returned (or is returning).
enum class VmState { kCreated, kRunning, kPaused, kStopped };

inline const char* to_string(VmState s) {
  switch (s) {
    case VmState::kCreated: return "created";
    case VmState::kRunning: return "running";
    case VmState::kPaused: return "paused";
    case VmState::kStopped: return "stopped";
  }
  return "unknown";
}

struct VmInfo {
  VmState state = VmState::kCreated;
  unsigned vcpus = 0;
  uint64_t memory_bytes = 0;
  // Host time since run() started (paused time included); zero before run().
  std::chrono::microseconds uptime{0};
};

// Microseconds since the Vm was created (or since `process_start` when given).
struct BootTimes {
  std::optional<uint64_t> first_kvm_run_us;
  std::optional<uint64_t> first_marker_us;  // guest wrote to the boot-marker port
};

// Vm::restore(): where a snapshot's memory comes from and what the restoring process
// decides for itself. The machine's shape (vCPUs, memory, CPU model, transport, devices) is
// the snapshot's.
struct RestoreOptions {
  std::string memory_path;   // empty: DIR/memory
  // Read all of guest RAM now (MAP_POPULATE) instead of page by page as the guest touches it.
  bool prefault = false;
  // A copy-on-write clone: the memory file is mapped MAP_PRIVATE and never copied (this is
  // also what a plain restore does); writable disks must then be replaced through `disks`,
  // since two clones writing one image would corrupt it.
  bool clone = false;
  // Console, logging, sandbox and virtiofsd settings come from here; everything else in it
  // is ignored.
  VmConfig host;
  // Non-empty: replaces the snapshot's disks, one for one (same count, same order).
  std::vector<DiskConfig> disks;
  // run() starts with the VM paused (Firecracker's "resume_vm": false); resume() lets it go.
  bool start_paused = false;
};

class Vm {
 public:
  virtual ~Vm() = default;

  // Checks everything about `config` that needs nothing created: sizes, names, syntax and
  // the host's limits (guest-physical address bits, RAM + swap unless the host overcommits).
  // create() runs it first; a CLI calls it to tell bad arguments from failures.
  [[nodiscard]] static Result<void> validate(const VmConfig& config);
  // Builds the whole machine: memory, kernel, devices, vCPUs. Nothing runs yet.
  [[nodiscard]] static Result<std::unique_ptr<Vm>> create(const VmConfig& config);

  // Rebuilds a machine from a snapshot directory (DIR/state and DIR/memory, see
  // docs/snapshot-format.md): memory mapped from the memory file, vCPUs, interrupt
  // controllers, PIT and kvmclock as they were. Nothing runs until run(). Refuses, with the
  // reason: a damaged or foreign state file, another CPU model, a memory file shorter than
  // the snapshot's layout.
  [[nodiscard]] static Result<std::unique_ptr<Vm>> restore(const std::string& dir, const RestoreOptions& options = {});
  // The same from a state file and `options.memory_path` (required) anywhere (Firecracker's
  // snapshot_path and mem_file_path).
  [[nodiscard]] static Result<std::unique_ptr<Vm>> restore_files(const std::string& state_path,
                                                                 const RestoreOptions& options);

  // Runs the guest on this thread (device event loop) plus one thread per vCPU, until the
  // guest powers off, reboots or crashes, or stop() is called. Callable once.
  [[nodiscard]] virtual Result<VmExit> run() = 0;
  // Asks run() to return kStopped. Safe from any thread and from a signal handler.
  virtual void stop() = 0;

  // Stops every vCPU outside KVM_RUN and holds the device event loop, so neither the guest
  // nor an emulated device touches guest RAM until resume(); returns once that is so. The
  // guest's kvmclock is frozen (saved now, restored by resume()), so guest time does not
  // jump by the paused interval. Interrupts raised meanwhile stay pending and are delivered
  // after resume(). Kernel vhost-net and vhost-user back ends (virtiofsd) are separate
  // threads/processes and are not paused. Errors: not running (before run(), after the VM
  // stopped) or already paused. Thread-safe; not for signal handlers.
  [[nodiscard]] virtual Result<void> pause() = 0;
  // Undoes pause(): restores kvmclock, lets the loop serve pending device work, restarts
  // the vCPUs. Error when not paused.
  [[nodiscard]] virtual Result<void> resume() = 0;
  // Presses the ACPI power button (fixed-feature, PM1 PWRBTN_STS; raises the SCI when the
  // guest enabled it): a guest with an ACPI button driver (Linux + acpid or systemd-logind)
  // shuts down cleanly and run() returns kPowerOff. The guest may ignore it; stop() is the
  // hard way. Returns once the press is queued (on a paused VM it happens at resume()).
  // Error before run() or after the VM stopped. Thread-safe.
  [[nodiscard]] virtual Result<void> request_shutdown() = 0;
  // Writes a snapshot to DIR (created if missing): DIR/state and DIR/memory. A running VM is
  // paused for the time it takes and resumed afterwards when `resume_after`; a paused one
  // stays paused. Error when not running or paused, or when a device cannot be saved
  // (virtio-fs shares). Thread-safe; the calling thread opens and writes the files.
  [[nodiscard]] virtual Result<void> snapshot(const std::string& dir, bool resume_after = true) = 0;
  // Firecracker's form: the VM must be paused; the state and the memory go to the two paths.
  [[nodiscard]] virtual Result<void> save_snapshot(const std::string& state_path, const std::string& memory_path) = 0;
  // A snapshot of state, vCPU count, memory size and uptime. Thread-safe.
  virtual VmInfo info() const = 0;

  virtual BootTimes boot_times() const = 0;
  // The timeline's origin; defaults to create() time.
  virtual void set_time_origin(std::chrono::steady_clock::time_point origin) = 0;
};

// Process exit codes used by the `microvm` command (documented in README.md).
inline constexpr int kExitPowerOff = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitReboot = 3;
inline constexpr int kExitCrash = 4;
inline constexpr int kExitStopped = 5;
// A sandboxed VMM thread made a system call its role forbids (the process ends at once,
// from any thread, also when embedded; see VmConfig::sandbox).
inline constexpr int kExitSandbox = 6;
inline constexpr int kExitPanicked = 7;

inline int exit_code_for(VmExitReason r) {
  switch (r) {
    case VmExitReason::kPowerOff: return kExitPowerOff;
    case VmExitReason::kReboot: return kExitReboot;
    case VmExitReason::kCrash: return kExitCrash;
    case VmExitReason::kStopped: return kExitStopped;
    case VmExitReason::kPanicked: return kExitPanicked;
  }
  return kExitError;
}

}  // namespace microvm
