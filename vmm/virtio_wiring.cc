#include "vmm/virtio_wiring.h"

#include <algorithm>
#include <chrono>

#include "devices/block/disk_options.h"
#include "devices/block/open_disk.h"
#include "devices/console/port_name.h"
#include "devices/console/pty_port.h"
#include "devices/console/socket_port.h"
#include "devices/net/open_net.h"
#include "devices/pmem/pmem_image.h"
#include "devices/vhost/virtiofsd_process.h"
#include "devices/vsock/unix_vsock_backend.h"
#include "microvm/guest_abi.h"
#include "virtio/balloon/device.h"
#include "virtio/blk/device.h"
#include "virtio/console/device.h"
#include "virtio/fs/device.h"
#include "virtio/net/device.h"
#include "virtio/pmem/device.h"
#include "virtio/rng/device.h"
#include "virtio/vsock/device.h"
#include "vmm/sandbox_needs.h"

namespace microvm {
namespace {

// IOAPIC pins for virtio-mmio devices: ISA-range pins nothing else uses (4 is COM1, 8 the
// RTC, 9 the ACPI SCI), so the guest treats them as edge-triggered like our irqfds.
constexpr uint32_t kMmioGsis[] = {5, 6, 7, 10, 11, 12, 13, 14, 15};
constexpr uint64_t kMmioSlotSize = 0x1000;
// virtio-pmem regions go above all RAM, each at a 1 GiB boundary: Linux maps them with struct
// pages (memremap_pages) for DAX, which wants at least 2 MiB (subsection) alignment, and
// QEMU-style 1 GiB spacing keeps them clear of any RAM layout change. KVM slots 0-7 are RAM.
constexpr uint64_t kPmemAlign = 1ull << 30;
constexpr uint32_t kFirstPmemSlot = 8;
constexpr size_t kMaxPmems = 8;

NetBackendOptions net_backend_options(const NetConfig& n) {
  NetBackendOptions o;
  o.tap = n.tap;
  o.bridge = n.bridge;
  o.user = n.user;
  o.passt = n.passt;
  o.hostfwd = n.hostfwd;
  o.host_loopback = n.host_loopback;
  o.restrict_to_forwards = n.restrict_to_forwards;
  o.max_host_sockets = n.max_host_sockets;
  o.vhost = n.vhost;
  return o;
}

DiskOptions disk_options(const DiskConfig& d, bool sandbox, const Logger& log) {
  DiskOptions o;
  o.path = d.path;
  o.format = d.format;
  o.read_only = d.read_only;
  o.cache = d.cache;
  o.backing = d.backing;
  o.backing_format = d.backing_format;
  o.allow_image_backing = d.trust_image_backing;
  o.engine = d.engine;
  o.logger = &log;
  o.sandboxed = sandbox;
  return o;
}

// A shared folder: starts its virtiofsd (or uses the given backend socket), connects and
// negotiates. The info line is the share's startup cost, for benchmarks.
Result<std::unique_ptr<FsDevice>> open_share(const ShareConfig& s, const VmConfig& config, const Logger& log,
                                             Fd* backend_stderr,
                                             const std::function<void(const char*, std::string)>& on_event) {
  auto start = std::chrono::steady_clock::now();
  FsOptions fs;
  fs.tag = s.tag;
  if (fs.tag.empty()) fs.tag = s.host_dir.substr(s.host_dir.find_last_of('/') + 1);
  fs.logger = &log;
  fs.snapshot_remount = s.snapshot_remount;
  // The share's worker thread talks to the backend under its own filter (vhost-user role).
  if (config.sandbox) fs.enter_sandbox = [&config] { return enter_vhost_worker_sandbox(config); };
  if (on_event)
    fs.on_backend_failed = [on_event, group = "fs_" + fs.tag](const std::string& what) {
      on_event("backend-died", group + ": " + what);
    };
  if (s.socket_path.empty()) {
    VirtiofsdOptions v;
    v.binary = TRY(find_virtiofsd(config.virtiofsd_path));
    v.shared_dir = s.host_dir;
    v.tag = fs.tag;
    v.read_only = s.read_only;
    v.logger = &log;
    fs.process = TRY(VirtiofsdProcess::start(v));
    *backend_stderr = fs.process->take_stderr_pipe();
    fs.socket_path = fs.process->socket_path();
  } else {
    fs.socket_path = s.socket_path;
  }
  std::string tag = fs.tag;
  bool spawned = fs.process != nullptr;
  auto device = TRY(FsDevice::create(std::move(fs)));
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  log.log(LogLevel::kInfo, "share %s: ready in %lld us (%s, vhost-user negotiated)", tag.c_str(),
          static_cast<long long>(us), spawned ? "virtiofsd started" : "existing backend socket");
  return device;
}

template <class C>
void append(MetricGroup& g, const C& counters) {
  counters.visit([&g](const char* name, uint64_t v) { g.counters.emplace_back(name, v); });
}

// A rate limiter's counter and gauges (io_throttle.h); `throttle` may be null (vhost-net).
void append_throttle(MetricGroup& g, const IoThrottle* throttle, const std::string& prefix) {
  if (throttle)
    throttle->visit_metrics(prefix,
                            [&g](std::string name, uint64_t v) { g.counters.emplace_back(std::move(name), v); });
}

void append_transport(MetricGroup& g, const TransportCounters& t) {
  auto add = [&g](const char* name, const std::atomic<uint64_t>& v) {
    g.counters.emplace_back(name, v.load(std::memory_order_relaxed));
  };
  add("transport_bad_accesses", t.bad_accesses);
  add("transport_ignored_queue_writes", t.ignored_queue_writes);
  add("transport_bad_status_writes", t.bad_status_writes);
  add("transport_features_refused", t.features_refused);
  add("transport_activations", t.activations);
  add("transport_activation_failures", t.activation_failures);
  add("transport_resets", t.resets);
  add("transport_writes_during_reset", t.writes_during_reset);
}

// Adds `g`'s counters into `total` by name (Firecracker's "block"/"net" totals); the
// "needs_reset" gauge becomes how many devices need a reset.
void add_into(MetricGroup& total, const MetricGroup& g) {
  for (const auto& [name, v] : g.counters) {
    // A device's limits are its own: a sum of them means nothing.
    if (name.find("rate_limit_") != std::string::npos) continue;
    auto it =
        std::find_if(total.counters.begin(), total.counters.end(), [&](const auto& e) { return e.first == name; });
    if (it == total.counters.end())
      total.counters.emplace_back(name, v);
    else
      it->second += v;
  }
}

}  // namespace

void VirtioWiring::metrics(std::vector<MetricGroup>& out) const {
  MetricGroup block{"block", {}}, net{"net", {}};
  bool any_block = false, any_net = false;
  for (const auto& s : metric_sources_) {
    MetricGroup g{s.group, {}};
    if (s.counters) s.counters(g);
    g.counters.emplace_back("needs_reset", s.device->needs_reset() ? 1 : 0);
    append_transport(g, *s.transport);
    if (s.group.starts_with("block_")) {
      add_into(block, g);
      any_block = true;
    } else if (s.group.starts_with("net_")) {
      add_into(net, g);
      any_net = true;
    }
    out.push_back(std::move(g));
  }
  if (any_block) out.push_back(std::move(block));
  if (any_net) out.push_back(std::move(net));
}

VirtioWiring::~VirtioWiring() {
  // Transports reset their devices (draining I/O) before the root and buses forget them.
  pci_devices_.clear();
  mmio_devices_.clear();
}

std::optional<PciHostWindow> VirtioWiring::pci_window() const {
  if (!pci_root_) return std::nullopt;
  const auto& l = pci_root_->layout();
  return PciHostWindow{static_cast<uint32_t>(l.mmio_base), static_cast<uint32_t>(l.mmio_size)};
}

DeviceSnapshotSet VirtioWiring::snapshot_devices() {
  DeviceSnapshotSet set;
  set.set_pci_root(pci_root_.get());
  for (auto& t : pci_devices_) set.add(*t);
  for (auto& t : mmio_devices_) set.add(*t);
  return set;
}

Result<std::unique_ptr<BlockBackend>> VirtioWiring::open_disk_backend(const DiskConfig& d) const {
  auto opts = disk_options(d, ctx_.config.sandbox, ctx_.log);
  auto backend = open_disk(opts);
  if (!backend) {
    Error e = backend.error().context("disk " + d.path);
    if (!d.read_only && (e.code == EROFS || e.code == EACCES))
      e.what += " (to use it read-only, add readonly=on to --disk)";
    return std::unexpected(e);
  }
  return backend;
}

VirtioWiring::Disk* VirtioWiring::disk(const std::string& id) {
  for (auto& d : disks_)
    if (d.id == id) return &d;
  return nullptr;
}

NetDevice* VirtioWiring::net(const std::string& id) {
  for (auto& [name, device] : nets_)
    if (name == id) return device;
  return nullptr;
}

Result<std::unique_ptr<VirtioWiring>> VirtioWiring::create(Context ctx) {
  std::unique_ptr<VirtioWiring> w(new VirtioWiring(std::move(ctx)));
  TRY(w->setup_pci_root());
  const VmConfig& config = w->ctx_.config;
  for (const auto& d : config.disks) {
    auto backend = w->open_disk_backend(d);
    if (!backend) return std::unexpected(backend.error());
    BlkOptions blk;
    blk.read_only = d.read_only;
    blk.serial = d.serial;
    blk.num_queues = static_cast<uint16_t>(std::max(1u, std::min(d.queues, 16u)));
    blk.logger = &w->ctx_.log;
    blk.rate_limit = d.rate_limit;
    auto device = BlkDevice::create(std::move(*backend), blk);
    if (!device) return std::unexpected(device.error().context("disk " + d.path));
    BlkDevice* dev = device->get();
    std::string id = d.id.empty() ? "drive" + std::to_string(&d - config.disks.data()) : d.id;
    w->disks_.push_back(Disk{id, dev, d});
    TRY(w->attach(std::move(*device), "virtio-blk", "block_" + id, [dev](MetricGroup& g) {
      append(g, dev->counters());
      append_throttle(g, dev->rate_limiter(), "");
    }));
  }
  for (const auto& n : config.nets) {
    auto opened = open_net(net_backend_options(n), w->ctx_.log);
    if (!opened) return std::unexpected(opened.error().context("--net"));
    NetOptions net;
    net.mac = default_mac(opened->mac_seed);
    if (!n.mac.empty()) net.mac = TRY(parse_mac(n.mac));
    net.offloads = opened->offloads;
    net.logger = &w->ctx_.log;
    net.rate_limit = n.rate_limit;
    net.rx_rate_limit = n.rx_rate_limit;
    auto device = NetDevice::create(std::move(opened->backend), net, std::move(opened->vhost));
    if (!device) return std::unexpected(device.error().context("--net"));
    NetDevice* dev = device->get();
    std::string id = n.id.empty() ? "net" + std::to_string(&n - config.nets.data()) : n.id;
    w->nets_.emplace_back(id, dev);
    TRY(w->attach(std::move(*device), "virtio-net", "net_" + id, [dev](MetricGroup& g) {
      append(g, dev->counters());
      append_throttle(g, dev->rx_rate_limiter(), "rx_");
      append_throttle(g, dev->tx_rate_limiter(), "tx_");
    }));
  }
  if (!config.shares.empty() && !w->ctx_.memory.seal_problem().empty())
    w->ctx_.log.log(LogLevel::kWarn, "guest RAM memfd is not size-sealed (%s): a vhost-user back end could truncate it",
                    w->ctx_.memory.seal_problem().c_str());
  for (const auto& s : config.shares) {
    Fd backend_stderr;
    auto device = open_share(s, config, w->ctx_.log, &backend_stderr, w->ctx_.on_event);
    if (!device)
      return std::unexpected(device.error().context("--share " + (s.host_dir.empty() ? s.socket_path : s.host_dir)));
    if (backend_stderr)
      TRY(w->relay_backend_log(std::move(backend_stderr), "virtiofsd (" + (s.tag.empty() ? s.host_dir : s.tag) + ")"));
    std::string tag = (*device)->tag();
    FsDevice* dev = device->get();
    TRY(w->attach(std::move(*device), "virtio-fs", "fs_" + tag, [dev](MetricGroup& g) {
      g.counters.emplace_back("backend_failed", dev->backend_lost() ? 1 : 0);
      g.counters.emplace_back("interrupts", dev->interrupts());
    }));
  }
  TRY(w->setup_console());
  if (config.balloon) {
    BalloonOptions b;
    b.target_bytes = config.balloon->size_bytes;
    b.guest_memory_bytes = w->ctx_.memory.total_size();
    b.deflate_on_oom = config.balloon->deflate_on_oom;
    b.free_page_reporting = config.balloon->free_page_reporting;
    b.stats_interval_s = config.balloon->stats_interval_s;
    b.logger = &w->ctx_.log;
    auto device = BalloonDevice::create(b);
    if (!device) return std::unexpected(device.error().context("--balloon"));
    w->balloon_ = device->get();
    const BalloonDevice* dev = device->get();
    TRY(w->attach(std::move(*device), "virtio-balloon", "balloon",
                  [dev](MetricGroup& g) { append(g, dev->counters()); }));
  }
  if (config.pmems.size() > kMaxPmems) return fail("at most " + std::to_string(kMaxPmems) + " --pmem devices");
  uint64_t next_gpa = MICROVM_HIGH_RAM_START;
  for (const auto& r : w->ctx_.memory.regions()) next_gpa = std::max(next_gpa, r.end().raw());
  for (size_t i = 0; i < config.pmems.size(); ++i) TRY(w->add_pmem(config.pmems[i], i, next_gpa));
  if (config.vsock) {
    auto backend = UnixVsockBackend::create(config.vsock->socket_path);
    if (!backend) return std::unexpected(backend.error().context("--vsock"));
    VsockOptions vs;
    vs.guest_cid = config.vsock->guest_cid;
    vs.logger = &w->ctx_.log;
    auto device = VsockDevice::create(std::move(*backend), vs);
    if (!device) return std::unexpected(device.error().context("--vsock"));
    const VsockDevice* dev = device->get();
    TRY(w->attach(std::move(*device), "virtio-vsock", "vsock", [dev](MetricGroup& g) { append(g, dev->counters()); }));
  }
  if (config.rng) {
    RngOptions rng;
    rng.logger = &w->ctx_.log;
    rng.rate_limit = config.rng_rate_limit;
    auto device = TRY(RngDevice::create(rng));
    RngDevice* dev = device.get();
    TRY(w->attach(std::move(device), "virtio-rng", "rng", [dev](MetricGroup& g) {
      append(g, dev->counters());
      append_throttle(g, dev->rate_limiter(), "");
    }));
  }
  return w;
}

Result<void> VirtioWiring::setup_console() {
  const VmConfig& config = ctx_.config;
  if (!ctx_.console_port && config.serial_ports.empty()) return {};
  std::vector<ConsolePortSpec> ports;
  // Port 0 is the console (hvc0) on stdio, or an unconnected placeholder: the guest numbers
  // named ports from 1 either way.
  ports.push_back(ConsolePortSpec{"", ctx_.console_port != nullptr, ctx_.console_port});
  for (const auto& sp : config.serial_ports) {
    TRY(check_port_name(sp.name));
    std::unique_ptr<PortBackend> backend;
    if (sp.pty) {
      auto pty = PtyPort::open();
      if (!pty) return std::unexpected(pty.error().context("--serial-port " + sp.name));
      // The user has to learn the path somehow: at the default log level (warn), on stderr.
      ctx_.log.log(LogLevel::kWarn, "--serial-port %s: pty %s", sp.name.c_str(), (*pty)->path().c_str());
      backend = std::move(*pty);
    } else {
      auto sock = SocketPort::listen(sp.socket_path);
      if (!sock) return std::unexpected(sock.error().context("--serial-port " + sp.name));
      backend = std::move(*sock);
    }
    ports.push_back(ConsolePortSpec{sp.name, false, backend.get()});
    console_ports_.push_back(std::move(backend));
  }
  ConsoleOptions options;
  options.logger = &ctx_.log;
  auto device = ConsoleDevice::create(std::move(ports), options);
  if (!device) return std::unexpected(device.error().context("virtio-console"));
  TRY((*device)->start_backends(ctx_.loop));
  const ConsoleDevice* dev = device->get();
  return attach(std::move(*device), "virtio-console", "console_ports",
                [dev](MetricGroup& g) { append(g, dev->counters()); });
}

Result<void> VirtioWiring::add_pmem(const PmemConfig& p, size_t index, uint64_t& next_gpa) {
  auto image = PmemImage::open(p.path, p.read_only);
  if (!image) return std::unexpected(image.error());
  uint64_t gpa = (next_gpa + kPmemAlign - 1) / kPmemAlign * kPmemAlign;
  uint64_t size = (*image)->size();
  next_gpa = gpa + size;
  // The guest reaches the file through its own KVM slot; the mapping lives in the image,
  // which the device (and so the transport) owns until after the VM is gone.
  TRY(ctx_.vm.set_user_memory_region(kFirstPmemSlot + static_cast<uint32_t>(index), gpa, size, (*image)->host(),
                                     p.read_only));
  if (p.read_only) {
    auto trap = std::make_unique<PmemWriteTrap>(p.path, &ctx_.log);
    TRY(ctx_.mmio.add(gpa, size, trap.get()));
    pmem_traps_.push_back(std::move(trap));
  }
  ctx_.log.log(LogLevel::kInfo, "pmem %s: %llu MiB at guest-physical 0x%llx%s", p.path.c_str(),
               static_cast<unsigned long long>(size >> 20), static_cast<unsigned long long>(gpa),
               p.read_only ? " (read-only)" : "");
  PmemOptions o;
  o.start = gpa;
  o.size = size;
  o.read_only = p.read_only;
  o.logger = &ctx_.log;
  auto device = PmemDevice::create(std::move(*image), o);
  if (!device) return std::unexpected(device.error().context("--pmem " + p.path));
  const PmemDevice* dev = device->get();
  return attach(std::move(*device), "virtio-pmem", "pmem" + std::to_string(index),
                [dev](MetricGroup& g) { append(g, dev->counters()); });
}

Result<void> VirtioWiring::relay_backend_log(Fd read_end, std::string source) {
  auto relay = std::make_unique<Relay>();
  relay->log = std::make_unique<BackendLogRelay>(std::move(read_end), std::move(source), ctx_.log);
  Relay* r = relay.get();
  r->registration = TRY(LoopRegistration::add(ctx_.loop, r->log->fd(), EPOLLIN, [r](uint32_t) {
    if (!r->log->drain()) r->registration.reset();  // the back end closed its stderr (it exited)
  }));
  relays_.push_back(std::move(relay));
  return {};
}

Result<void> VirtioWiring::setup_pci_root() {
  // The root bridge exists even without PCI devices: stock kernels expect one, and port 0xcf9
  // (reset) lives in its config dword.
  pci_root_ = TRY(PciRoot::create(PciRootLayout{}));
  pci_root_->set_cf9_hook([this](uint8_t v) {
    if ((v & 0x04) && ctx_.on_reset_request) ctx_.on_reset_request();
  });
  const auto& l = pci_root_->layout();
  TRY(ctx_.pio.add(l.config_io_base, l.config_io_size, &pci_root_->config_io()));
  TRY(ctx_.mmio.add(l.ecam_base, l.ecam_size, &pci_root_->ecam()));
  // The root decodes its whole BAR window itself, as a host bridge does: BAR moves never touch
  // our buses (a bus change from inside a config write would deadlock on the bus lock).
  TRY(ctx_.mmio.add(l.mmio_base, l.mmio_size, &pci_root_->mmio_window()));
  return {};
}

std::function<void()> VirtioWiring::needs_reset_reporter(const std::string& group) const {
  if (!ctx_.on_event) return {};
  return [emit = ctx_.on_event, group] { emit("device-error", group + ": needs reset"); };
}

Result<void> VirtioWiring::attach(std::unique_ptr<VirtioDevice> device, const char* what, std::string group,
                                  CounterFn counters) {
  const VirtioDevice* dev = device.get();
  if (ctx_.config.transport == Transport::kPci) {
    auto t = PciTransport::create(std::move(device), {}, ctx_.memory, ctx_.loop, services_, ctx_.log);
    if (!t) return std::unexpected(t.error().context(what));
    auto slot = pci_root_->add_function(**t);
    if (!slot) return std::unexpected(slot.error().context(what));
    (*t)->set_on_needs_reset(needs_reset_reporter(group));
    metric_sources_.push_back({std::move(group), std::move(counters), dev, &(*t)->counters()});
    pci_devices_.push_back(std::move(*t));
    return {};
  }
  size_t index = mmio_devices_.size();
  if (index >= std::size(kMmioGsis)) return fail(std::string(what) + ": too many virtio-mmio devices");
  MmioTransportParams params;
  params.base_address = MICROVM_VIRTIO_MMIO_BASE + index * kMmioSlotSize;
  params.gsi = kMmioGsis[index];
  auto t = MmioTransport::create(std::move(device), params, ctx_.memory, ctx_.loop, services_, ctx_.log);
  if (!t) return std::unexpected(t.error().context(what));
  TRY(ctx_.mmio.add(params.base_address, MmioTransport::kWindowSize, t->get()));
  if (!cmdline_.empty()) cmdline_ += ' ';
  cmdline_ += (*t)->cmdline_fragment();
  (*t)->set_on_needs_reset(needs_reset_reporter(group));
  metric_sources_.push_back({std::move(group), std::move(counters), dev, &(*t)->counters()});
  mmio_devices_.push_back(std::move(*t));
  return {};
}

}  // namespace microvm
