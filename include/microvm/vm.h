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
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "microvm/byte_source.h"
#include "microvm/device_options.h"
#include "microvm/log_sink.h"
#include "microvm/rate_limit.h"
#include "microvm/result.h"

namespace microvm {

struct DiskConfig {
  std::string id;  // names the drive in metrics (block_ID); empty: "drive" + its index
  std::string path;
  DiskFormat format = DiskFormat::kRaw;  // never probed: a qcow2 image must say so
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;   // kNone: O_DIRECT
  std::string serial;                        // virtio-blk GET_ID, at most 20 bytes
  std::string backing;                       // qcow2 overlays: the backing file, named explicitly
  std::optional<DiskFormat> backing_format;  // unset: as recorded in the overlay
  bool trust_image_backing = false;          // follow the backing file name stored in the image
  EngineKind engine = EngineKind::kAuto;     // kAuto: io_uring, else the synchronous engine
  unsigned queues = 1;                       // virtio-blk request queues
  IoLimit rate_limit;                        // bytes (read/write data) and requests per second; over it requests wait
};

// One virtio-net device (see README "Networking"). Exactly one of tap, bridge or user.
struct NetConfig {
  std::string id;                        // names the interface in metrics (net_ID); empty: "net" + its index
  std::string tap;                       // tap interface: an existing one, or created (CAP_NET_ADMIN)
  std::string bridge;                    // create a tap and attach it to this bridge
  bool user = false;                     // user-mode networking (libslirp): 10.0.2.0/24, DHCP, DNS
  bool passt = false;                    // user-mode networking out of process: a passt helper (README)
  std::vector<std::string> hostfwd;      // user and passt: "tcp::HOSTPORT-:GUESTPORT" (binds 127.0.0.1) or "udp::..."
  bool host_loopback = false;            // user only: let the guest reach the host's 127.0.0.1 and 169.254/16
  bool restrict_to_forwards = false;     // user only: no outbound connections, only hostfwd (QEMU restrict=yes)
  uint32_t max_host_sockets = 256;       // user only: host sockets slirp may hold; more are refused and counted
  std::string mac;                       // empty: stable default derived from the interface name
  VhostMode vhost = VhostMode::kAuto;    // tap only: kAuto falls back to userspace when unavailable
  IoLimit rate_limit;                    // bytes and frames per second, each direction; needs vhost off
  std::optional<IoLimit> rx_rate_limit;  // the receive direction's own limit (the API's rx_rate_limiter);
                                         // nullopt: rate_limit applies to both directions
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

// A named virtio-console port (see README "Console"): the guest sees it as
// /sys/class/virtio-ports/vportNpM with that name (/dev/virtio-ports/NAME under udev).
// Exactly one of socket_path or pty.
struct SerialPortConfig {
  std::string name;         // 1..128 bytes of [A-Za-z0-9._-]
  std::string socket_path;  // microvm listens here; one client at a time
  bool pty = false;         // a new pseudo-terminal; its path is logged (warn level: "--serial-port NAME: pty PATH")
};

// A virtio-balloon device (see README "Memory balloon").
struct BalloonConfig {
  uint64_t size_bytes = 0;           // initial target: memory the guest should give back
  bool deflate_on_oom = false;       // the guest may take balloon pages back under memory pressure
  bool free_page_reporting = false;  // the guest reports free memory, which the host releases
  uint32_t stats_interval_s = 0;     // statistics polling period; 0: no statistics queue
};

// A virtio-pmem device: `path` mapped into guest-physical memory, the guest's /dev/pmemN.
struct PmemConfig {
  std::string path;        // a regular file, its size a multiple of 2 MiB
  bool read_only = false;  // mapped read-only for the guest; several VMs may share the file
};

// A virtio-vsock device (see README "vsock"), host side on Unix sockets as in Firecracker:
// guest connections to host port P go to "<socket_path>_P"; host clients connect to
// socket_path and write "CONNECT <port>\n".
struct VsockConfig {
  uint64_t guest_cid = 3;   // >= 3
  std::string socket_path;  // bound (a stale socket file there is replaced) when the VM is built
};

enum class Transport { kPci, kMmio };

// Something a running Vm reports to its owner (VmConfig::on_event). `type` is one of
// "started", "paused", "resumed", "shutdown-requested" (the power button was pressed),
// "stopped" (detail: "power-off", "reboot", "crash", "stopped" or "panicked") and
// "guest-panic".
struct VmEvent {
  std::string type;
  std::string detail;
};

// One group of counters in Vm::metrics(): "vm", "vcpu", "block_ID", "net_ID", "rng",
// "fs_TAG", "console", "event_loop", "io_bus". Values only grow, except the few gauges that
// say so in README.md ("needs_reset", "uptime_us").
struct MetricGroup {
  std::string name;
  std::vector<std::pair<std::string, uint64_t>> counters;
};

struct VmConfig {
  std::string kernel_path;
  std::string initrd_path;  // empty: none
  // Instead of kernel_path / initrd_path: the images' bytes, e.g. found inside a disk image
  // (`microvm run --disk IMG` without --kernel). Shared, not copied, with the running Vm.
  std::shared_ptr<const std::vector<std::byte>> kernel_image;
  std::shared_ptr<const std::vector<std::byte>> initrd_image;
  // Instead of all of the above: images read on demand, chunk by chunk, straight into guest RAM
  // (no whole-file buffer). Read once, by Vm::create; the Vm keeps no reference afterwards.
  // Their sizes and every offset in them are checked like a file's.
  std::shared_ptr<ByteSource> kernel_source;
  std::shared_ptr<ByteSource> initrd_source;
  std::string cmdline = "console=ttyS0 reboot=k panic=-1";
  unsigned cpus = 1;
  uint64_t memory_bytes = 512ull << 20;
  bool hugepages = false;
  std::string cpu = "host";  // "host[,+feature|-feature...]"
  Transport transport = Transport::kPci;
  std::vector<DiskConfig> disks;
  std::vector<NetConfig> nets;           // virtio-net devices, in order
  bool rng = true;                       // a virtio-rng device
  IoLimit rng_rate_limit;                // its bytes and requests per second; over it requests wait
  std::vector<ShareConfig> shares;       // virtio-fs shared folders
  std::optional<VsockConfig> vsock;      // a virtio-vsock device
  std::string virtiofsd_path;            // empty: virtiofsd on PATH, else /usr/lib/qemu/virtiofsd
  std::optional<BalloonConfig> balloon;  // a virtio-balloon device
  std::vector<PmemConfig> pmems;         // virtio-pmem devices, in order (/dev/pmem0, ...)

  // Console: the UART reads `console_in` and writes `console_out`; -1 disconnects either.
  int console_in = 0;
  int console_out = 1;
  // Ctrl-A x stops the VM, Ctrl-A a sends a literal Ctrl-A (QEMU's escapes), when reading a terminal.
  bool console_escapes = true;
  // The console on console_in/console_out is port 0 of a virtio-console device (hvc0) instead
  // of the UART. The UART stays (early boot, earlyprintk=ttyS0) with its output on console_out.
  // A cmdline without "console=" gets "console=hvc0".
  bool virtio_console = false;
  // Named virtio-console ports; with any, there is a virtio-console device even without
  // virtio_console (its port 0 then is not connected).
  std::vector<SerialPortConfig> serial_ports;

  // QEMU's pvpanic device (port 0x505, DSDT "QEMU0001"): a guest kernel panic ends run()
  // with kPanicked instead of whatever the guest does next (panic=-1 reboots). Off by
  // default: it changes what a panicking guest's exit looks like.
  bool pvpanic = false;

  // Called once per boot mark (first KVM_RUN, the guest's boot marker) when it happens,
  // with microseconds since creation (BootTimes), on the thread that saw it: a vCPU thread,
  // sandboxed like `log_sink`, so it must only write to already-open fds.
  std::function<void(const char* mark, uint64_t us)> on_boot_mark;

  LogSink log_sink;  // empty: stderr
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
  // Once the vCPUs and the event loop have started, run() unmaps the read-only pages of the
  // executable and its libraries from the process (MADV_DONTNEED; they stay in the page cache
  // and fault back in when used). Start-up code that never runs again then stops counting in
  // RSS and PSS. For a program that is done with its own start-up by then (the microvm CLI);
  // a debugger's breakpoints set before run() would be lost.
  bool release_startup_pages = false;

  // Called on VMM threads (vCPU, event loop, the one in run(), a pause()/resume() caller)
  // for each VmEvent. It must return quickly and never block on the VM (no Vm calls); it
  // runs under the sandbox of the thread that reports (an already-open eventfd or pipe
  // write is fine). Empty: no events.
  std::function<void(const VmEvent&)> on_event;
};

enum class VmExitReason {
  kPowerOff,  // the guest powered off
  kReboot,    // the guest asked for a reset
  kCrash,     // triple fault, KVM internal error or an exit we cannot handle
  kStopped,   // Vm::stop() or the console escape
  kPanicked,  // the guest reported a kernel panic through pvpanic (VmConfig::pvpanic)
};

inline const char* to_string(VmExitReason r) {
  switch (r) {
    case VmExitReason::kPowerOff:
      return "power-off";
    case VmExitReason::kReboot:
      return "reboot";
    case VmExitReason::kCrash:
      return "crash";
    case VmExitReason::kStopped:
      return "stopped";
    case VmExitReason::kPanicked:
      return "panicked";
  }
  return "unknown";
}

struct VmExit {
  VmExitReason reason = VmExitReason::kStopped;
  std::string detail;  // for kCrash: what happened and a register dump
};

// Where a Vm is in its life. kStopped is final: run() has returned (or is returning).
enum class VmState { kCreated, kRunning, kPaused, kStopped };

inline const char* to_string(VmState s) {
  switch (s) {
    case VmState::kCreated:
      return "created";
    case VmState::kRunning:
      return "running";
    case VmState::kPaused:
      return "paused";
    case VmState::kStopped:
      return "stopped";
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

// The balloon as the device sees it, and the guest's latest statistics (Firecracker's
// names; a value is unset until the guest reported it).
struct BalloonStats {
  uint64_t target_bytes = 0;  // what the host asked for
  uint64_t actual_bytes = 0;  // what the guest says the balloon holds
  std::optional<uint64_t> swap_in, swap_out, major_faults, minor_faults;
  std::optional<uint64_t> free_memory, total_memory, available_memory, disk_caches;
  std::optional<uint64_t> hugetlb_allocations, hugetlb_failures;
  // Host memory given back so far: by inflation, and by free page reporting.
  uint64_t inflate_released_bytes = 0;
  uint64_t report_released_bytes = 0;
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
  std::string memory_path;  // empty: DIR/memory
  // Read all of guest RAM now (MAP_POPULATE) instead of page by page as the guest touches it.
  bool prefault = false;
  // A copy-on-write clone: the memory file is mapped MAP_PRIVATE and never copied (this is
  // also what a plain restore does); writable disks must then be replaced through `disks`,
  // since two clones writing one image would corrupt it.
  bool clone = false;
  // Console, logging, sandbox and virtiofsd settings come from here; everything else in it
  // is ignored, except `serial_ports`: when non-empty they replace the host sides of the
  // snapshot's named virtio-console ports (same count, same names, in order); and `vsock`:
  // when set, its socket_path replaces the snapshot's (its guest_cid must be the snapshot's).
  VmConfig host;
  // Non-empty: replaces the snapshot's disks, one for one (same count, same order).
  std::vector<DiskConfig> disks;
  // run() starts with the VM paused (Firecracker's "resume_vm": false); resume() lets it go.
  bool start_paused = false;
};

// Vm::prepare_clones(): what a ClonePool keeps ready.
struct ClonePoolOptions {
  // Prepared VMs kept ready (1..64). Each holds a KVM VM, its vCPUs and an untouched private
  // mapping of the memory file: kernel memory and address space, no guest RAM.
  unsigned size = 4;
  std::string memory_path;  // empty: DIR/memory
};

// Clones of one snapshot made ahead of time (Vm::prepare_clones), for a process that spawns
// many: Vm::clone_from(pool, ...) then costs a fraction of a millisecond instead of several.
// Most of a clone's cost on a busy host is not CPU but KVM waiting for SRCU grace periods
// when a VM's memory slots and irqchip are created. Those parts depend on the snapshot alone
// (VM, irqchip, PIT, the memory file mapped copy-on-write and registered with KVM, vCPUs with
// the snapshot's CPUID), so the pool's own thread creates them in advance and refills as
// clones are taken. The state file is read and checked once, when the pool is made. What
// depends on the clone (devices and their host sides, vCPU registers, LAPIC, TSC, irqchip,
// PIT and kvmclock, which start counting when set) is done when it is taken.
//
// The thread only creates KVM objects and mappings; it starts in prepare_clones() and
// inherits the caller's seccomp filter, if any, so make the pool before a thread filters
// itself (VmConfig::sandbox_calling_thread). The clones' own threads are sandboxed as usual.
// The pool reads the snapshot once: one rewritten in place later is not seen (and clones of
// it would mix old state with new memory); snapshot into a new directory instead.
class ClonePool {
 public:
  // Stops and joins the thread and frees the prepared VMs. Clones already taken own all they
  // run on and may outlive the pool.
  virtual ~ClonePool() = default;
  // Prepared VMs ready now.
  virtual unsigned ready() const = 0;
  // Waits until the pool is full or `timeout` passed. Error: the last failure of the
  // thread to prepare a VM (it retries; a clone taken meanwhile is made on the spot).
  [[nodiscard]] virtual Result<void> wait_until_full(std::chrono::milliseconds timeout) const = 0;

 private:
  ClonePool() = default;  // only the library's implementation (Vm::clone_from relies on it)
  friend class ClonePoolImpl;
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
  // A copy-on-write clone of the snapshot in `dir` (what `microvm run --restore DIR --clone`
  // does): guest RAM mapped privately from DIR/memory, never copied, so any number of clones
  // share the file and each keeps its own writes. `options.clone` is implied; the snapshot's
  // writable disks, socket serial ports and vsock socket must be replaced through `options`
  // (disks, host.serial_ports, host.vsock), and a writable pmem file refuses it, since clones
  // would share them. `options.prefault` is refused (it would read all RAM up front).
  [[nodiscard]] static Result<std::unique_ptr<Vm>> clone_from(const std::string& dir, RestoreOptions options = {});
  // A ClonePool for the snapshot in `dir`: reads and checks its state file and memory file
  // now (errors as for clone_from), then prepares `options.size` VMs on the pool's thread.
  [[nodiscard]] static Result<std::unique_ptr<ClonePool>> prepare_clones(const std::string& dir,
                                                                         const ClonePoolOptions& options = {});
  // clone_from(dir, options) with a VM the pool prepared (made on the spot when none is
  // ready). The same rules, plus: `options.memory_path` must be empty or the pool's.
  // Thread-safe: several threads may take clones from one pool.
  [[nodiscard]] static Result<std::unique_ptr<Vm>> clone_from(ClonePool& pool, RestoreOptions options = {});

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
  // Sets the balloon's target size (VmConfig::balloon must be set): the guest driver inflates
  // or deflates towards it in the background. Error without a balloon or for a size larger
  // than guest memory. Thread-safe.
  [[nodiscard]] virtual Result<void> set_balloon(uint64_t bytes) {
    (void)bytes;
    return fail(EINVAL, "this VM has no balloon device");
  }
  // Media change (Firecracker's PATCH /drives/ID): the virtio-blk drive `drive_id`
  // (DiskConfig::id, else "drive" + its index) gets the image at `path`. The image is opened
  // on the calling thread the way the drive's --disk was: the same read-only flag and format
  // (unless `format` is given; never probed), and its lock is taken. The
  // swap itself happens on the device's event loop (inline while paused): requests already
  // sent to the old image complete there, a writable old image is flushed, then the capacity
  // in config space is the new image's size and the guest gets a configuration-change
  // interrupt. On any error the old image stays in place. Error before run() or after the
  // VM stopped. Thread-safe; the calling thread needs to open files.
  [[nodiscard]] virtual Result<void> swap_disk(const std::string& drive_id, const std::string& path,
                                               std::optional<DiskFormat> format = std::nullopt) {
    (void)drive_id, (void)path, (void)format;
    return fail(EINVAL, "this VM cannot change drives");
  }
  // New rate limits for a running drive (PATCH /drives rate_limiter) or network interface
  // (PATCH /network-interfaces rx_rate_limiter/tx_rate_limiter): each bucket given replaces the
  // old limit (per_second 0 removes it) and starts full with its one-time burst; the others keep
  // their limit and state. A request held back by the old limit is looked at again at once.
  // Interfaces on vhost-net cannot be limited. Error for an unknown id, before run() or after
  // the VM stopped. Thread-safe.
  [[nodiscard]] virtual Result<void> set_disk_rate_limit(const std::string& drive_id, const RateLimitUpdate& change) {
    (void)drive_id, (void)change;
    return fail(EINVAL, "this VM cannot change rate limits");
  }
  [[nodiscard]] virtual Result<void> set_net_rate_limit(const std::string& iface_id, const RateLimitUpdate& rx,
                                                        const RateLimitUpdate& tx) {
    (void)iface_id, (void)rx, (void)tx;
    return fail(EINVAL, "this VM cannot change rate limits");
  }
  // Target, actual size and the latest guest statistics. Thread-safe.
  [[nodiscard]] virtual Result<BalloonStats> balloon_stats() const {
    return fail(EINVAL, "this VM has no balloon device");
  }
  // A snapshot of state, vCPU count, memory size and uptime. Thread-safe.
  virtual VmInfo info() const = 0;
  // Every counter the VMM keeps (README "Metrics"): relaxed atomic reads, no lock a device
  // or vCPU takes, so it is cheap and callable from any thread, at any time after create().
  virtual std::vector<MetricGroup> metrics() const = 0;

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
    case VmExitReason::kPowerOff:
      return kExitPowerOff;
    case VmExitReason::kReboot:
      return kExitReboot;
    case VmExitReason::kCrash:
      return kExitCrash;
    case VmExitReason::kStopped:
      return kExitStopped;
    case VmExitReason::kPanicked:
      return kExitPanicked;
  }
  return kExitError;
}

}  // namespace microvm
