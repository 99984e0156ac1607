#include "vmm/virtio_wiring.h"

#include <chrono>

#include "devices/block/disk_spec.h"
#include "devices/block/open_disk.h"
#include "devices/vhost/virtiofsd_process.h"
#include "devices/net/open_net.h"
#include "microvm/guest_abi.h"
#include "virtio/blk/device.h"
#include "virtio/fs/device.h"
#include "virtio/net/device.h"
#include "virtio/rng/device.h"

namespace microvm {
namespace {

// IOAPIC pins for virtio-mmio devices: ISA-range pins nothing else uses (4 is COM1, 8 the
// RTC, 9 the ACPI SCI), so the guest treats them as edge-triggered like our irqfds.
constexpr uint32_t kMmioGsis[] = {5, 6, 7, 10, 11, 12, 13, 14, 15};
constexpr uint64_t kMmioSlotSize = 0x1000;

Result<DiskOptions> disk_options(const DiskConfig& d, bool sandbox, const Logger& log) {
  DiskOptions o;
  o.path = d.path;
  o.format = TRY(parse_disk_format(d.format));
  o.read_only = d.read_only;
  if (d.cache == "none") o.cache = CacheMode::kNone;
  else if (d.cache == "writeback" || d.cache.empty()) o.cache = CacheMode::kWriteback;
  else return fail("disk " + d.path + ": cache must be none or writeback");
  o.backing = d.backing;
  if (!d.backing_format.empty()) o.backing_format = TRY(parse_disk_format(d.backing_format));
  o.allow_image_backing = d.trust_image_backing;
  if (d.engine == "io_uring") o.engine = EngineKind::kIoUring;
  else if (d.engine == "sync") o.engine = EngineKind::kSync;
  else if (d.engine == "auto" || d.engine.empty()) o.engine = EngineKind::kAuto;
  else return fail("disk " + d.path + ": engine must be auto, io_uring or sync");
  o.logger = &log;
  o.sandboxed = sandbox;
  return o;
}

// A shared folder: starts its virtiofsd (or uses the given backend socket), connects and
// negotiates. The info line is the share's startup cost, for benchmarks.
Result<std::unique_ptr<FsDevice>> open_share(const ShareConfig& s, const std::string& virtiofsd_path, const Logger& log,
                                             Fd* backend_stderr) {
  auto start = std::chrono::steady_clock::now();
  FsOptions fs;
  fs.tag = s.tag;
  if (fs.tag.empty()) fs.tag = s.host_dir.substr(s.host_dir.find_last_of('/') + 1);
  fs.logger = &log;
  fs.snapshot_remount = s.snapshot_remount;
  if (s.socket_path.empty()) {
    VirtiofsdOptions v;
    v.binary = TRY(find_virtiofsd(virtiofsd_path));
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

}  // namespace

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

Result<std::unique_ptr<VirtioWiring>> VirtioWiring::create(Context ctx) {
  std::unique_ptr<VirtioWiring> w(new VirtioWiring(std::move(ctx)));
  TRY(w->setup_pci_root());
  const VmConfig& config = w->ctx_.config;
  for (const auto& d : config.disks) {
    auto opts = TRY(disk_options(d, config.sandbox, w->ctx_.log));
    auto backend = open_disk(opts);
    if (!backend) {
      Error e = backend.error().context("disk " + d.path);
      if (!d.read_only && (e.code == EROFS || e.code == EACCES))
        e.what += " (to use it read-only, add readonly=on to --disk)";
      return std::unexpected(e);
    }
    BlkOptions blk;
    blk.read_only = d.read_only;
    blk.serial = d.serial;
    blk.num_queues = static_cast<uint16_t>(std::max(1u, std::min(d.queues, 16u)));
    blk.logger = &w->ctx_.log;
    auto device = BlkDevice::create(std::move(*backend), blk);
    if (!device) return std::unexpected(device.error().context("disk " + d.path));
    TRY(w->attach(std::move(*device), "virtio-blk"));
  }
  for (const auto& n : config.nets) {
    auto opened = open_net(n, w->ctx_.log);
    if (!opened) return std::unexpected(opened.error().context("--net"));
    NetOptions net;
    net.mac = default_mac(opened->mac_seed);
    if (!n.mac.empty()) net.mac = TRY(parse_mac(n.mac));
    net.offloads = opened->offloads;
    net.logger = &w->ctx_.log;
    auto device = NetDevice::create(std::move(opened->backend), net, std::move(opened->vhost));
    if (!device) return std::unexpected(device.error().context("--net"));
    TRY(w->attach(std::move(*device), "virtio-net"));
  }
  if (!config.shares.empty() && !w->ctx_.memory.seal_problem().empty())
    w->ctx_.log.log(LogLevel::kWarn, "guest RAM memfd is not size-sealed (%s): a vhost-user back end could truncate it",
                    w->ctx_.memory.seal_problem().c_str());
  for (const auto& s : config.shares) {
    Fd backend_stderr;
    auto device = open_share(s, config.virtiofsd_path, w->ctx_.log, &backend_stderr);
    if (!device) return std::unexpected(device.error().context("--share " + (s.host_dir.empty() ? s.socket_path : s.host_dir)));
    if (backend_stderr) TRY(w->relay_backend_log(std::move(backend_stderr), "virtiofsd (" + (s.tag.empty() ? s.host_dir : s.tag) + ")"));
    TRY(w->attach(std::move(*device), "virtio-fs"));
  }
  if (config.rng) {
    RngOptions rng;
    rng.logger = &w->ctx_.log;
    TRY(w->attach(TRY(RngDevice::create(rng)), "virtio-rng"));
  }
  return w;
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

Result<void> VirtioWiring::attach(std::unique_ptr<VirtioDevice> device, const char* what) {
  if (ctx_.config.transport == Transport::kPci) {
    auto t = PciTransport::create(std::move(device), {}, ctx_.memory, ctx_.loop, services_, ctx_.log);
    if (!t) return std::unexpected(t.error().context(what));
    auto slot = pci_root_->add_function(**t);
    if (!slot) return std::unexpected(slot.error().context(what));
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
  mmio_devices_.push_back(std::move(*t));
  return {};
}

}  // namespace microvm
