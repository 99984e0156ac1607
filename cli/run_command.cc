#include "cli/run_command.h"

#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "api/config_file.h"
#include "api/controller.h"
#include "base/rate_limit_spec.h"
#include "cli/api_session.h"
#include "cli/cloud_init_seed.h"
#include "cli/disk_boot.h"
#include "cli/disk_spec.h"
#include "cli/graceful_shutdown.h"
#include "cli/jail_launcher.h"
#include "cli/memory_device_args.h"
#include "cli/net_arg.h"
#include "cli/qemu_args.h"
#include "cli/serial_port_arg.h"
#include "cli/share_spec.h"
#include "cli/size_arg.h"
#include "cli/terminal.h"
#include "cli/vsock_arg.h"

namespace microvm {
namespace {

std::atomic<Vm*> g_running_vm{nullptr};  // for the CLI's signal handlers only
std::atomic<bool> g_terminate{false};

void on_termination_signal(int sig) {
  if (sig == SIGTERM && GracefulShutdown::notify_from_signal()) return;
  RawTerminal::restore_saved();
  g_terminate.store(true);
  if (Vm* vm = g_running_vm.load()) vm->stop();
}

}  // namespace

namespace {

// A launcher for the config file: nothing is started from it, the file only fills VmConfig.
class NoLauncher : public api::VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return fail(EINVAL, "not started from a config file"); }
  void stop() override {}
};

}  // namespace

Result<void> apply_config_file(RunOptions& opts) {
  std::ifstream in(opts.config_file, std::ios::binary);
  if (!in) return fail_errno("--config-file " + opts.config_file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > (1u << 20)) return fail(EINVAL, "--config-file " + opts.config_file + ": larger than 1 MiB");
  NoLauncher none;
  api::Controller controller(opts.vm, api::InstanceInfo{}, none);
  TRY(api::apply_config_document(controller, text));
  opts.vm = controller.vm_config();
  if (controller.metrics_configured()) {
    if (opts.api_sock.empty())
      return fail(EINVAL, "--config-file: 'metrics' needs --api-sock (the API thread writes them)");
    opts.metrics_path = controller.metrics_path();
  }
  return {};
}

void install_termination_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_termination_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
}

bool termination_requested() { return g_terminate.load(); }

int run_vm(Vm& vm, const RunOptions& opts) {
  g_running_vm.store(&vm);
  // A signal that arrived before the Vm was published still stops it.
  if (g_terminate.load()) vm.stop();
  std::unique_ptr<GracefulShutdown> graceful;
  if (opts.shutdown_timeout_s > 0) {
    auto g = GracefulShutdown::start(vm, std::chrono::seconds(opts.shutdown_timeout_s));
    if (!g) {
      g_running_vm.store(nullptr);
      std::fprintf(stderr, "microvm: %s\n", g.error().what.c_str());
      return kExitError;
    }
    graceful = std::move(*g);
  }
  Result<VmExit> exit;
  {
    RawTerminal raw(opts.vm.console_in);
    exit = vm.run();
  }
  graceful.reset();
  g_running_vm.store(nullptr);

  if (opts.boot_timer) {
    auto t = vm.boot_times();
    std::fprintf(stderr, "microvm: boot-timer: first KVM_RUN at %s us, guest boot marker at %s us\n",
                 t.first_kvm_run_us ? std::to_string(*t.first_kvm_run_us).c_str() : "-",
                 t.first_marker_us ? std::to_string(*t.first_marker_us).c_str() : "-");
  }

  if (!exit) {
    std::fprintf(stderr, "microvm: %s\n", exit.error().what.c_str());
    return kExitError;
  }
  switch (exit->reason) {
    case VmExitReason::kCrash:
      std::fprintf(stderr, "microvm: guest crashed: %s\n", exit->detail.c_str());
      break;
    case VmExitReason::kPanicked:
      std::fprintf(stderr, "\r\nmicrovm: %s\n", exit->detail.c_str());
      break;
    case VmExitReason::kStopped:
      std::fprintf(stderr, "\r\nmicrovm: %s\n", exit->detail.c_str());
      break;
    default:
      break;
  }
  return exit_code_for(exit->reason);
}

Result<DiskConfig> parse_disk_arg(const std::string& spec) {
  auto parsed = parse_disk_spec(spec);
  if (!parsed) return fail(EINVAL, "--disk " + spec + ": " + parsed.error().what);
  const DiskOptions& o = parsed->options;
  DiskConfig d;
  d.path = o.path;
  d.format = o.format;
  d.read_only = o.read_only;
  d.cache = o.cache;
  d.serial = parsed->serial;
  d.backing = o.backing;
  d.backing_format = o.backing_format;
  d.trust_image_backing = o.allow_image_backing;
  d.rate_limit = parsed->rate_limit;
  d.engine = o.engine;
  return d;
}

Result<IoLimit> parse_rng_arg(const std::string& spec) {
  IoLimit limit;
  for (size_t start = 0; start <= spec.size();) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t eq = item.find('=');
    if (eq == std::string::npos) return fail(EINVAL, "--rng " + spec + ": expected key=value, got '" + item + "'");
    auto known = parse_rate_limit_option(std::string_view(item).substr(0, eq), std::string_view(item).substr(eq + 1),
                                         "iops", limit);
    if (!known) return std::unexpected(known.error().context("--rng"));
    if (!*known)
      return fail(EINVAL, "--rng " + spec + ": unknown option '" + item + "' (bps, bps_burst, iops, iops_burst)");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (auto ok = check_rate_limit(limit, "iops"); !ok) return std::unexpected(ok.error().context("--rng"));
  return limit;
}

Result<RunOptions> parse_run_args(int argc, const char* const* argv) {
  RunOptions opts;
  CLI::App app(
      "Boot a Linux guest with its serial console on this terminal.\n"
      "Exit codes: 0 guest powered off, 1 error, 2 bad arguments, 3 guest rebooted,\n"
      "4 guest crashed, 5 stopped (C-a x or a signal), 6 a sandboxed thread made a forbidden\n"
      "system call (a microvm bug or compromise; the call is named on stderr), 7 the guest\n"
      "kernel panicked (reported through --pvpanic).",
      "microvm run");
  app.set_help_flag("-h,--help", "Show this help");
  std::string memory = "512M";
  std::string transport = "pci";
  std::vector<std::string> disks;
  std::vector<std::string> shares;
  std::vector<std::string> nets;
  std::vector<std::string> pmems;
  std::string balloon;
  std::string vsock;
  std::string log_level = "warn";
  bool no_rng = false;
  std::string console = "serial";
  std::vector<std::string> serial_ports;
  std::string sandbox = "on";
  std::string firmware;
  app.add_option("--kernel,-k", opts.vm.kernel_path,
                 "Kernel image: ELF vmlinux or bzImage. Without it (and without --api-sock) the kernel, initrd and "
                 "command line are found inside the first --disk (BLS entries, unified kernel images on the EFI system "
                 "partition, grub.cfg, extlinux.conf, /vmlinuz; ext2/3/4 and FAT)");
  app.add_option("--api-sock", opts.api_sock,
                 "Serve the Firecracker-compatible REST API on this Unix socket (mode 0600). Without --kernel "
                 "the VM is configured through it and started by PUT /actions InstanceStart");
  app.add_flag("--no-api", opts.no_api, "Serve no API (the default; conflicts with --api-sock)");
  app.add_option("--config-file", opts.config_file,
                 "Firecracker-format JSON (boot-source, drives, machine-config, network-interfaces, logger); "
                 "the VM starts at once. Conflicts with --kernel");
  app.add_option("--metrics-path", opts.metrics_path,
                 "With --api-sock: append one JSON line of metrics to this file or named pipe every 60 s, on "
                 "PUT /actions FlushMetrics and at exit (as PUT /metrics)");
  app.add_option("--restore", opts.restore_dir,
                 "Start from the snapshot in this directory (DIR/state, DIR/memory) instead of booting a kernel; "
                 "the machine's shape comes from the snapshot, --disk replaces its disks one for one");
  app.add_flag("--clone", opts.clone,
               "With --restore: a copy-on-write clone (guest RAM mapped privately from the memory file, never "
               "copied; writable disks must be replaced with --disk)");
  app.add_flag("--restore-prefault", opts.restore_prefault,
               "With --restore: read all of guest RAM now instead of on first touch");
  app.add_option("--initrd,-i", opts.vm.initrd_path, "Initial ramdisk (cpio archive)");
  app.add_option("--cmdline,-c", opts.vm.cmdline,
                 "Kernel command line (booting from a disk: replaces the entry's own options)")
      ->default_str(opts.vm.cmdline);
  app.add_option("--append", opts.append,
                 "Added to the end of the kernel command line (QEMU's single-dash -append is --cmdline)");
  std::string cloud_init;
  app.add_option("--cloud-init", cloud_init,
                 "user-data=FILE[,meta-data=FILE][,network-config=FILE]: attach a cloud-init NoCloud seed (a "
                 "read-only FAT disk labelled cidata, the last virtio-blk disk; built in a temporary file removed "
                 "once the VM has opened it). ssh-key=FILE instead of user-data= writes user-data installing those "
                 "keys for the default user; hostname=H instead of meta-data= sets local-hostname. Without "
                 "meta-data= the instance-id follows the seed's contents");
  app.add_option("--firmware", firmware,
                 "Not supported: microvm boots Linux directly (--kernel, or the kernel found inside --disk)");
  app.add_flag("--print-boot", opts.print_boot,
               "With --disk and no --kernel: print the partition, file system, kernel, initrd, command line and "
               "the rule that found them, then exit");
  app.add_option("--cpus", opts.vm.cpus, "Number of vCPUs")->default_val(1)->check(CLI::Range(1, 254));
  app.add_option("--memory,-m", memory, "Guest RAM, e.g. 512M or 2G")->default_str(memory);
  app.add_flag("--hugepages", opts.vm.hugepages, "Back guest RAM with 2 MiB huge pages");
  app.add_option("--cpu", opts.vm.cpu, "CPU model: host[,+feature|-feature...] (names as in /proc/cpuinfo)")
      ->default_str("host");
  app.add_option("--disk", disks,
                 "PATH,format=raw|qcow2[,readonly=on][,cache=none|writeback][,serial=S][,backing=FILE]"
                 "[,backing_format=F][,image_backing=on][,engine=auto|io_uring|sync]"
                 "[,bps=N][,bps_burst=N][,iops=N][,iops_burst=N]; repeatable");
  app.add_option("--net", nets,
                 "tap=NAME[,mac=M][,vhost=on|off|auto] | bridge=BR[,mac=M][,vhost=..] | "
                 "user[,hostfwd=tcp:[ADDR]:HOSTPORT-:GUESTPORT]...[,restrict=on][,host-loopback=on][,max-sockets=N] | "
                 "passt[,mac=M][,hostfwd=...]... (user networking in a separate, self-sandboxed passt process); "
                 "any of them [,bps=N][,pps=N][,bps_burst=N][,pps_burst=N] (per direction); repeatable");
  app.add_option(
      "--share", shares,
      "HOSTDIR[,tag=TAG][,readonly=on][,snapshot=remount] | socket=PATH,tag=TAG: a host folder over virtio-fs "
      "(guest: mount -t virtiofs TAG /mnt); snapshot=remount: the device may be saved and comes back "
      "reset (VM snapshots with shares are still refused); repeatable");
  app.add_option("--balloon", balloon,
                 "[size=SIZE][,deflate-on-oom=on][,free-page-reporting=on][,stats=SECONDS]: a virtio-balloon "
                 "device; SIZE is what the guest gives back at start (a bare number is MiB), resized at run time "
                 "through the API (microvm ctl balloon SIZE)")
      ->expected(0, 1);
  app.add_option("--pmem", pmems,
                 "PATH[,readonly=on]: a file (size a multiple of 2 MiB) mapped into guest memory as virtio-pmem "
                 "(guest: /dev/pmemN, mount -o dax); repeatable");
  app.add_option("--vsock", vsock,
                 "cid=N,socket=PATH: a virtio-vsock device (guest CID N >= 3). Guest connections to host port P "
                 "go to the Unix socket PATH_P; host clients connect to PATH and send \"CONNECT <port>\\n\" "
                 "(Firecracker's conventions)");
  app.add_option("--virtiofsd", opts.vm.virtiofsd_path,
                 "virtiofsd binary (default: on PATH, else /usr/lib/qemu/virtiofsd)");
  app.add_option("--transport", transport, "virtio transport: pci or mmio")
      ->check(CLI::IsMember({"pci", "mmio"}))
      ->default_str("pci");
  app.add_flag("--no-rng", no_rng, "Do not add a virtio-rng device");
  std::string rng_spec;
  app.add_option("--rng", rng_spec,
                 "bps=N[,bps_burst=N][,iops=N][,iops_burst=N]: rate-limit the virtio-rng device (requests wait)");
  app.add_option("--console", console,
                 "serial: the console (stdin/stdout) is the 16550 UART, ttyS0; virtio: it is virtio-console "
                 "port 0, hvc0 (the UART stays for early boot; the default cmdline then says console=hvc0)")
      ->check(CLI::IsMember({"serial", "virtio"}))
      ->default_str("serial");
  app.add_option("--serial-port", serial_ports,
                 "name=NAME,socket=PATH|pty: a named virtio-console port (guest: /dev/virtio-ports/NAME with "
                 "udev, else /sys/class/virtio-ports/*/name) on a Unix socket microvm listens on (one client "
                 "at a time) or a new pty (its path is printed); repeatable");
  app.add_flag("--boot-timer", opts.boot_timer,
               "Report microseconds from start to the first KVM_RUN and to the guest's boot marker");
  app.add_option("--sandbox", sandbox,
                 "on: every VMM thread but the setup thread runs under a default-deny seccomp filter for "
                 "its role (SECURITY.md); off: no filters (prints a warning)")
      ->check(CLI::IsMember({"on", "off"}))
      ->default_str("on");
  std::string jail = ::geteuid() == 0 ? "on" : "off";
  app.add_option("--jail", jail,
                 "on (the default when run as root): the VMM runs jailed: new mount, PID, IPC, "
                 "UTS, cgroup (and, without --net, network) namespaces, an empty read-only root, no capabilities, "
                 "no_new_privs, as --uid/--gid (SECURITY.md); off: not (the default for other users, who cannot "
                 "jail it). A bare --jail means on")
      ->expected(0, 1)
      ->check(CLI::IsMember({"on", "off"}))
      ->default_str(jail);
  std::string snapshot_dir;
  app.add_option("--snapshot-dir", snapshot_dir,
                 "With --api-sock: the directory PUT /snapshot/create and /snapshot/load may name files in "
                 "(paths relative to it, or absolute below it; '..', symlinks and other paths are refused). "
                 "Jailed, it is bound read-write into the jail and must be writable by --uid; without it a "
                 "jailed VMM refuses API snapshots");
  app.add_option("--uid", opts.jail_uid, "With --jail: the user the VMM runs as (name or number; default nobody)");
  app.add_option("--gid", opts.jail_gid, "With --jail: its group (default: the user's group, else 65534)");
  app.add_flag("--pvpanic", opts.vm.pvpanic,
               "Add QEMU's pvpanic device (port 0x505): a guest kernel panic ends microvm with exit code 7");
  app.add_option("--shutdown-timeout", opts.shutdown_timeout_s,
                 "On SIGTERM press the guest's ACPI power button and stop it only if it has not powered "
                 "off after N seconds (a second SIGTERM stops at once); 0: stop at once")
      ->default_val(0)
      ->check(CLI::Range(0, 86400));
  app.add_option("--log-level", log_level, "error, warn, info or debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}))
      ->default_str("warn");

  std::vector<std::string> given(argv + std::min(argc, 1), argv + argc);
  auto takes_value = [&app](const std::string& name) {
    const CLI::Option* o = app.get_option_no_throw(name);
    return o != nullptr && o->get_items_expected_min() > 0;
  };
  auto translated = translate_qemu_args(given, takes_value);
  if (!translated) return fail(EINVAL, translated.error().what);
  opts.notes = std::move(translated->notes);
  std::vector<std::string> reversed(translated->args.rbegin(), translated->args.rend());  // CLI11's order
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    return std::unexpected(Error(0, app.help()));
  } catch (const CLI::ExtrasError&) {
    // CLI11 names the extras in the order it was handed them, which is reversed; say them as typed.
    std::string extras;
    for (const auto& a : app.remaining()) extras += (extras.empty() ? "" : " ") + a;
    return fail(EINVAL, "not a microvm run option: " + extras + "\nRun 'microvm run --help' for the options.");
  } catch (const CLI::ParseError& e) {
    return fail(EINVAL, std::string(e.what()) + "\nRun 'microvm run --help' for the options.");
  }
  // Before any other complaint: a QEMU user's first try, whose real answer is this one.
  if (app.count("--firmware"))
    return fail(EINVAL,
                "--firmware is not supported: microvm loads no EFI or BIOS firmware; it boots Linux directly "
                "(--kernel, or with only --disk the kernel, initrd and command line found inside the image)");
  if (opts.no_api && !opts.api_sock.empty()) return fail(EINVAL, "--no-api and --api-sock exclude each other");
  if (!opts.metrics_path.empty() && opts.api_sock.empty())
    return fail(EINVAL, "--metrics-path needs --api-sock (the API thread writes the metrics)");
  if (!opts.config_file.empty() && !opts.vm.kernel_path.empty())
    return fail(EINVAL, "--config-file names the kernel itself; leave out --kernel");
  if (!opts.restore_dir.empty() && (!opts.vm.kernel_path.empty() || !opts.config_file.empty()))
    return fail(EINVAL, "--restore starts from a snapshot; leave out --kernel and --config-file");
  if ((opts.clone || opts.restore_prefault) && opts.restore_dir.empty())
    return fail(EINVAL, "--clone and --restore-prefault need --restore DIR");
  if (opts.clone && opts.restore_prefault) return fail(EINVAL, "--clone and --restore-prefault exclude each other");
  opts.cmdline_given = app.count("--cmdline") > 0;
  if (opts.vm.kernel_path.empty() && opts.api_sock.empty() && opts.config_file.empty() && opts.restore_dir.empty()) {
    if (disks.empty())
      return fail(EINVAL,
                  "--kernel is required (or a --disk with a kernel inside, or --api-sock to configure the VM "
                  "through the API)\nRun 'microvm run --help' for the options.");
    opts.boot_from_disk = true;
    if (!opts.vm.initrd_path.empty())
      return fail(EINVAL, "--initrd needs --kernel (booting from a disk, the initrd comes from the disk's boot entry)");
  }
  if (!cloud_init.empty()) {
    if (!opts.api_sock.empty() || !opts.config_file.empty() || !opts.restore_dir.empty())
      return fail(
          EINVAL,
          "--cloud-init works with --kernel or --disk booting, not with --api-sock, --config-file or --restore");
    auto files = parse_cloud_init_arg(cloud_init);
    if (!files) return fail(EINVAL, files.error().context("--cloud-init").what);
    opts.cloud_init = std::move(*files);
  }
  if (opts.print_boot && !opts.boot_from_disk)
    return fail(EINVAL, "--print-boot needs a --disk and no --kernel, --api-sock or --config-file");
  // A bare --jail leaves the string as it was; it means on. With --api-sock too: snapshots
  // through the API go to --snapshot-dir, which is bound into the jail.
  opts.jail = app.count("--jail") > 0 ? jail != "off" : jail == "on";
  if (!snapshot_dir.empty()) {
    if (opts.api_sock.empty()) return fail(EINVAL, "--snapshot-dir needs --api-sock (it confines API snapshot paths)");
    char real[PATH_MAX];
    if (!::realpath(snapshot_dir.c_str(), real))
      return fail(EINVAL, "--snapshot-dir " + snapshot_dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
      return fail(EINVAL, "--snapshot-dir " + snapshot_dir + ": not a directory");
    if (std::string(real) == "/") return fail(EINVAL, "--snapshot-dir cannot be / (give it a directory of its own)");
    opts.snapshot_dir = real;
  }
  if (!opts.jail && (!opts.jail_uid.empty() || !opts.jail_gid.empty()))
    return fail(EINVAL, "--uid and --gid need the jail (--jail on, as root)");
  auto mem = parse_size(memory, 1ull << 20);
  if (!mem) return fail(EINVAL, mem.error().context("--memory").what);
  opts.vm.memory_bytes = *mem;
  opts.vm.transport = transport == "mmio" ? Transport::kMmio : Transport::kPci;
  opts.vm.rng = !no_rng;
  if (!rng_spec.empty()) {
    if (no_rng) return fail(EINVAL, "--rng and --no-rng exclude each other");
    opts.vm.rng_rate_limit = TRY(parse_rng_arg(rng_spec));
  }
  opts.vm.virtio_console = console == "virtio";
  // The default cmdline names ttyS0; with the console on hvc0 the kernel must be told instead.
  if (opts.vm.virtio_console && app.count("--cmdline") == 0) {
    if (auto at = opts.vm.cmdline.find("console=ttyS0"); at != std::string::npos)
      opts.vm.cmdline.replace(at, std::string("console=ttyS0").size(), "console=hvc0");
  }
  if (serial_ports.size() > 31) return fail(EINVAL, "--serial-port: at most 31 ports");
  for (const auto& sp : serial_ports) {
    auto port = parse_serial_port_arg(sp);
    if (!port) return fail(EINVAL, "--serial-port " + sp + ": " + port.error().what);
    for (const auto& other : opts.vm.serial_ports)
      if (other.name == port->name)
        return fail(EINVAL, "--serial-port " + sp + ": name '" + port->name + "' is used twice");
    opts.vm.serial_ports.push_back(*port);
  }
  if (opts.boot_timer) {
    // Each mark as it happens (the summary line at exit stays, for scripts). A vCPU thread
    // calls this under seccomp: format on the stack, one write(2).
    opts.vm.on_boot_mark = [](const char* mark, uint64_t us) {
      char line[128];
      int n = std::snprintf(line, sizeof line, "microvm: boot-timer: %s at %llu us\r\n", mark,
                            static_cast<unsigned long long>(us));
      if (n > 0) [[maybe_unused]]
        auto w = ::write(STDERR_FILENO, line, std::min<size_t>(n, sizeof line - 1));
    };
  }
  opts.vm.sandbox = sandbox == "on";
  for (const auto& d : disks) opts.vm.disks.push_back(TRY(parse_disk_arg(d)));
  if (!opts.boot_from_disk && !opts.append.empty())
    opts.vm.cmdline += (opts.vm.cmdline.empty() ? "" : " ") + opts.append;
  for (const auto& sh : shares) {
    auto spec = parse_share_spec(sh);
    if (!spec) return fail(EINVAL, "--share " + sh + ": " + spec.error().what);
    for (const auto& other : opts.vm.shares)
      if (other.tag == spec->tag) return fail(EINVAL, "--share " + sh + ": tag '" + spec->tag + "' is used twice");
    opts.vm.shares.push_back(
        ShareConfig{spec->host_dir, spec->tag, spec->read_only, spec->socket_path, spec->snapshot_remount});
  }
  for (const auto& n : nets) opts.vm.nets.push_back(TRY(parse_net_arg(n)));
  if (app.count("--balloon")) {
    auto b = parse_balloon_arg(balloon);
    if (!b) return std::unexpected(b.error());
    if (b->size_bytes > opts.vm.memory_bytes) return fail(EINVAL, "--balloon size is larger than --memory");
    opts.vm.balloon = *b;
  }
  for (const auto& p : pmems) opts.vm.pmems.push_back(TRY(parse_pmem_arg(p)));
  if (!vsock.empty()) {
    auto v = parse_vsock_arg(vsock);
    if (!v) return fail(EINVAL, "--vsock " + vsock + ": " + v.error().what);
    opts.vm.vsock = *v;
  }
  opts.vm.log_level = log_level == "error"   ? LogLevel::kError
                      : log_level == "info"  ? LogLevel::kInfo
                      : log_level == "debug" ? LogLevel::kDebug
                                             : LogLevel::kWarn;
  return opts;
}

Result<void> resolve_disk_boot(RunOptions& opts) {
  const DiskConfig& disk = opts.vm.disks.front();
  DiskBoot boot;
  if (opts.print_boot)
    boot.plan = TRY(find_disk_boot(disk, false));
  else
    boot = TRY(prepare_disk_boot(disk));
  image_boot::BootPlan& plan = boot.plan;
  std::string cmdline =
      image_boot::compose_cmdline(plan.options, opts.cmdline_given ? opts.vm.cmdline : "", opts.append);
  if (opts.print_boot) {
    std::string text = "disk:            " + disk.path + " (" + to_string(disk.format) + ")\n" +
                       image_boot::describe_plan(plan, cmdline);
    std::fputs(text.c_str(), stdout);
    return {};
  }
  opts.vm.cmdline = std::move(cmdline);
  // Mapped files (ext4) are read straight into guest RAM by Vm::create; others were read here.
  opts.vm.kernel_source = std::move(boot.kernel);
  opts.vm.initrd_source = std::move(boot.initrd);
  if (!opts.vm.kernel_source)
    opts.vm.kernel_image = std::make_shared<const std::vector<std::byte>>(std::move(plan.kernel_bytes));
  if (!opts.vm.initrd_source && !plan.initrd_bytes.empty())
    opts.vm.initrd_image = std::make_shared<const std::vector<std::byte>>(std::move(plan.initrd_bytes));
  for (const auto& n : plan.notes) std::fprintf(stderr, "microvm: %s\n", n.c_str());
  return {};
}

Result<JailOptions> jail_options_for(const RunOptions& opts) {
  JailOptions j;
  std::string user = opts.jail_uid.empty() ? "nobody" : opts.jail_uid;
  auto uid = resolve_jail_uid(user);
  if (!uid && opts.jail_uid.empty()) uid = 65534;  // no "nobody" entry: its usual number
  if (!uid) return std::unexpected(uid.error().context("--uid"));
  j.uid = *uid;
  if (!opts.jail_gid.empty()) {
    auto gid = resolve_jail_gid(opts.jail_gid);
    if (!gid) return std::unexpected(gid.error().context("--gid"));
    j.gid = *gid;
  } else if (passwd* pw = ::getpwuid(j.uid)) {
    j.gid = pw->pw_gid;
  }
  j.snapshot_dir = opts.snapshot_dir;
  if (!opts.restore_dir.empty())
    jail_fit_to_restore(j, opts.vm);
  else if (!opts.vm.kernel_path.empty() || opts.vm.kernel_image || opts.vm.kernel_source || opts.api_sock.empty())
    jail_fit_to_vm(j, opts.vm);
  else
    j.new_net_ns = false;  // configured through the API: decided at lock-down
  return j;
}

void jail_fit_to_vm(JailOptions& j, const VmConfig& vm) {
  bool user_net = false;
  for (const auto& n : vm.nets) user_net |= n.user;
  // Not yet in one (jail_options_for left it to now): the locking thread makes one.
  if (!j.new_net_ns) j.new_net_ns_at_lock_down = vm.nets.empty();
  j.new_net_ns = j.new_net_ns && vm.nets.empty();
  // libslirp re-reads it to forward the guest's DNS queries (10.0.2.3).
  if (user_net) j.copied_files.push_back("/etc/resolv.conf");
  for (const auto& n : vm.nets) {
    j.fd_headroom += n.user ? n.max_host_sockets : 0;
    if (!n.tap.empty()) j.admin_taps.push_back(n.tap);
    // passt is started before the lock-down and drops to nobody itself; tear-down stops it.
    j.keep_cap_kill |= n.passt;
  }
  // virtiofsd keeps root to sandbox itself; tear-down must still stop it.
  for (const auto& s : vm.shares) j.keep_cap_kill |= s.socket_path.empty();
  // Guest connections to host port P go to PATH_P, by path, after the jail closed.
  if (vm.vsock) bind_vsock_dir(j, vm.vsock->socket_path);
}

void bind_vsock_dir(JailOptions& j, const std::string& path) {
  size_t slash = path.rfind('/');
  j.bound_dirs.push_back(slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash));
}

void jail_fit_to_restore(JailOptions& j, const VmConfig& vm) {
  // A --vsock given on restore replaces the snapshot's socket: its directory must stay
  // reachable (the snapshot's own is not known here, so without --vsock guest-initiated
  // connections need --jail off).
  if (vm.vsock) bind_vsock_dir(j, vm.vsock->socket_path);
  j.new_net_ns = false;
  j.copied_files.push_back("/etc/resolv.conf");
  j.keep_cap_kill = true;
  j.fd_headroom += 256;
}

void absolute_vsock_path(VmConfig& vm) {
  if (!vm.vsock || vm.vsock->socket_path.empty() || vm.vsock->socket_path[0] == '/') return;
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd)) vm.vsock->socket_path = std::string(cwd) + "/" + vm.vsock->socket_path;
}

Result<std::unique_ptr<Vm>> create_vm(const RunOptions& opts) {
  if (opts.restore_dir.empty()) return Vm::create(opts.vm);
  RestoreOptions r;
  r.host = opts.vm;
  r.disks = opts.vm.disks;
  r.prefault = opts.restore_prefault;
  if (opts.clone) return Vm::clone_from(opts.restore_dir, r);
  return Vm::restore(opts.restore_dir, r);
}

int run_command(int argc, char** argv) {
  auto start = std::chrono::steady_clock::now();
  auto opts = parse_run_args(argc, argv);
  if (!opts) {
    if (opts.error().code == 0) {
      std::fputs(opts.error().what.c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "microvm run: %s\n", opts.error().what.c_str());
    return kExitUsage;
  }
  if (!opts->config_file.empty()) {
    if (auto ok = apply_config_file(*opts); !ok) {
      std::fprintf(stderr, "microvm run: %s\n", ok.error().what.c_str());
      return kExitUsage;
    }
  }
  for (const auto& note : opts->notes) std::fprintf(stderr, "microvm: %s\n", note.c_str());
  // The seed is the last disk, so a boot disk stays vda; it is removed at every exit from here
  // on, and explicitly once the VM holds it open.
  std::optional<SeedFile> seed;
  if (!opts->cloud_init.empty() && !opts->print_boot) {
    auto image = build_cloud_init_seed(opts->cloud_init);
    if (!image) {
      std::fprintf(stderr, "microvm run: --cloud-init: %s\n", image.error().what.c_str());
      return kExitUsage;
    }
    auto file = SeedFile::create(*image);
    if (!file) {
      std::fprintf(stderr, "microvm: %s\n", file.error().what.c_str());
      return kExitError;
    }
    seed.emplace(std::move(*file));
    DiskConfig d;
    d.id = "cidata";
    d.path = seed->path();
    d.format = DiskFormat::kRaw;
    d.read_only = true;
    d.serial = "cidata";
    opts->vm.disks.push_back(std::move(d));
  }
  // Every argument is checked before anything (a tap, a memfd, a KVM VM) is created, so a
  // bad one is exit code 2 and leaves nothing behind.
  if (auto ok = Vm::validate(opts->vm); !ok) {
    std::fprintf(stderr, "microvm run: %s\n", ok.error().what.c_str());
    return kExitUsage;
  }
  if (opts->boot_from_disk) {
    if (auto ok = resolve_disk_boot(*opts); !ok) {
      std::fprintf(stderr, "microvm: %s\n", ok.error().what.c_str());
      return kExitError;
    }
    if (opts->print_boot) return 0;
  }
  std::optional<JailOptions> jail;
  if (opts->jail) {
    // Inside the jail the working directory is its empty root: a relative --vsock path must
    // be resolved now, against ours.
    absolute_vsock_path(opts->vm);
    auto j = jail_options_for(*opts);
    if (!j) {
      std::fprintf(stderr, "microvm run: %s\n", j.error().what.c_str());
      return kExitUsage;
    }
    j->api_socket = opts->api_sock;
    if (seed) j->leftover_file = seed->path();
    auto launch = launch_jailed(*j, opts->vm.sandbox);
    if (!launch) {
      std::fprintf(stderr, "microvm: %s\n", launch.error().what.c_str());
      return kExitError;
    }
    if (!launch->in_jail) {
      // Removed by the launcher already (its filter has no unlink by path).
      if (seed) seed->release();
      return launch->exit_code;
    }
    jail = std::move(*j);
  }
  install_termination_handlers();
  // With --api-sock this thread removes the socket file after run(), which the supervisor
  // role forbids (no unlink), so it stays unfiltered there (SECURITY.md, "Not done yet").
  // Jailed, the launcher removes it, and this thread is filtered as without the API.
  if (!opts->api_sock.empty()) {
    opts->vm.sandbox_calling_thread = jail.has_value();
    return run_with_api(*opts, start, std::move(jail));
  }
  // This thread only waits, handles signals and tears the VM down once run() starts: it
  // runs under the "supervisor" seccomp role too (with --sandbox on), so no thread of a
  // running microvm is unfiltered.
  opts->vm.sandbox_calling_thread = true;
  // This thread only waits from here on, so the start-up code can leave the resident set.
  opts->vm.release_startup_pages = true;
  auto vm = create_vm(*opts);
  // A kernel read out of a disk image has been read: its reader (an open image) goes now.
  opts->vm.kernel_source.reset();
  opts->vm.initrd_source.reset();
  if (seed) seed->remove();  // open (or failed): the supervisor role may not unlink later
  if (!vm) {
    std::fprintf(stderr, "microvm: %s\n", vm.error().what.c_str());
    return kExitError;
  }
  (*vm)->set_time_origin(start);
  // Setup is over: every file, device and socket the VM needs is open. No vCPU or loop
  // thread exists yet, so none runs outside the jail; a share's vhost-user worker does, but
  // it is filtered already and follows the identity drop with the rest of the process.
  if (jail) {
    if (auto locked = jail_lock_down(*jail); !locked) {
      std::fprintf(stderr, "microvm: %s\n", locked.error().what.c_str());
      return kExitError;
    }
  }
  return run_vm(**vm, *opts);
}

}  // namespace microvm
