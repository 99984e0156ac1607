#include "vmm/snapshot/machine_state.h"

#include <string>

#include "vmm/snapshot/byte_codec.h"

namespace microvm::snapshot {
namespace {

constexpr uint64_t kPage = 4096;

void encode_disk(ByteSink& out, const DiskConfig& d) {
  out.string(d.path);
  // The enums as their names, so the file does not depend on their numbering.
  out.string(to_string(d.format));
  out.u8(d.read_only);
  out.string(to_string(d.cache));
  out.string(d.serial);
  out.string(d.backing);
  out.string(d.backing_format ? to_string(*d.backing_format) : "");
  out.u8(d.trust_image_backing);
  out.string(to_string(d.engine));
  out.u32(d.queues);
}

Result<bool> flag(ByteSource& in) {
  uint8_t v = TRY(in.u8());
  if (v > 1) return in.invalid("a flag that is neither 0 nor 1");
  return v == 1;
}

// A name read from the file, turned into its enum; `from` is one of the *_from_string.
template <class Enum>
Result<Enum> named(ByteSource& in, const char* what, std::optional<Enum> (*from)(std::string_view)) {
  std::string name = TRY(in.string(16));
  if (auto value = from(name)) return *value;
  return in.invalid(std::string(what) + " '" + name + "'");
}

Result<DiskConfig> decode_disk(ByteSource& in) {
  DiskConfig d;
  d.path = TRY(in.string(kMaxString));
  d.format = TRY(named(in, "disk format", disk_format_from_string));
  d.read_only = TRY(flag(in));
  d.cache = TRY(named(in, "disk cache mode", cache_mode_from_string));
  d.serial = TRY(in.string(64));
  d.backing = TRY(in.string(kMaxString));
  std::string backing_format = TRY(in.string(16));
  if (!backing_format.empty()) {
    d.backing_format = disk_format_from_string(backing_format);
    if (!d.backing_format) return in.invalid("backing format '" + backing_format + "'");
  }
  d.trust_image_backing = TRY(flag(in));
  d.engine = TRY(named(in, "disk I/O engine", engine_kind_from_string));
  d.queues = TRY(in.u32());
  if (d.queues == 0 || d.queues > 256) return in.invalid("disk queue count " + std::to_string(d.queues));
  return d;
}

void encode_net(ByteSink& out, const NetConfig& n) {
  out.string(n.tap);
  out.string(n.bridge);
  out.u8(n.user);
  out.u32(static_cast<uint32_t>(n.hostfwd.size()));
  for (const auto& f : n.hostfwd) out.string(f);
  out.u8(n.host_loopback);
  out.u8(n.restrict_to_forwards);
  out.u32(n.max_host_sockets);
  out.string(n.mac);
  out.string(to_string(n.vhost));
}

Result<NetConfig> decode_net(ByteSource& in) {
  NetConfig n;
  n.tap = TRY(in.string(64));
  n.bridge = TRY(in.string(64));
  n.user = TRY(flag(in));
  uint32_t forwards = TRY(in.u32());
  if (forwards > 64) return in.invalid(std::to_string(forwards) + " port forwards (at most 64)");
  for (uint32_t i = 0; i < forwards; ++i) n.hostfwd.push_back(TRY(in.string(256)));
  n.host_loopback = TRY(flag(in));
  n.restrict_to_forwards = TRY(flag(in));
  n.max_host_sockets = TRY(in.u32());
  n.mac = TRY(in.string(32));
  n.vhost = TRY(named(in, "vhost mode", vhost_mode_from_string));
  return n;
}

// The devices recorded after the nets, each a record of its own: u8 kind, then its fields.
// Snapshots written before these devices could be saved end after the nets.
enum class TailRecord : uint8_t { kBalloon = 1, kPmems = 2, kVsock = 3, kConsole = 4, kPasstNets = 5 };

void encode_tail(ByteSink& out, const VmConfig& c) {
  if (c.balloon) {
    out.u8(static_cast<uint8_t>(TailRecord::kBalloon));
    out.u64(c.balloon->size_bytes);
    out.u8(c.balloon->deflate_on_oom);
    out.u8(c.balloon->free_page_reporting);
    out.u32(c.balloon->stats_interval_s);
  }
  if (!c.pmems.empty()) {
    out.u8(static_cast<uint8_t>(TailRecord::kPmems));
    out.u32(static_cast<uint32_t>(c.pmems.size()));
    for (const auto& p : c.pmems) {
      out.string(p.path);
      out.u8(p.read_only);
    }
  }
  if (c.vsock) {
    out.u8(static_cast<uint8_t>(TailRecord::kVsock));
    out.u64(c.vsock->guest_cid);
    out.string(c.vsock->socket_path);
  }
  if (c.virtio_console || !c.serial_ports.empty()) {
    out.u8(static_cast<uint8_t>(TailRecord::kConsole));
    out.u8(c.virtio_console);
    out.u32(static_cast<uint32_t>(c.serial_ports.size()));
    for (const auto& sp : c.serial_ports) {
      out.string(sp.name);
      out.string(sp.socket_path);
      out.u8(sp.pty);
    }
  }
  // Which nets use passt (added after the net record's layout was fixed): one flag per net.
  bool any_passt = false;
  for (const auto& n : c.nets) any_passt |= n.passt;
  if (any_passt) {
    out.u8(static_cast<uint8_t>(TailRecord::kPasstNets));
    out.u32(static_cast<uint32_t>(c.nets.size()));
    for (const auto& n : c.nets) out.u8(n.passt);
  }
}

Result<void> decode_tail(ByteSource& in, VmConfig& c) {
  uint8_t last = 0;
  while (in.remaining() > 0) {
    uint8_t kind = TRY(in.u8());
    // Each record once, in order: a file cannot describe a device twice.
    if (kind <= last) return in.invalid("device record " + std::to_string(kind) + " out of order or repeated");
    last = kind;
    switch (static_cast<TailRecord>(kind)) {
      case TailRecord::kBalloon: {
        BalloonConfig b;
        b.size_bytes = TRY(in.u64());
        b.deflate_on_oom = TRY(flag(in));
        b.free_page_reporting = TRY(flag(in));
        b.stats_interval_s = TRY(in.u32());
        c.balloon = b;
        break;
      }
      case TailRecord::kPmems: {
        uint32_t n = TRY(in.u32());
        if (n == 0 || n > kMaxPmems) return in.invalid(std::to_string(n) + " pmem devices (1 to 8)");
        for (uint32_t i = 0; i < n; ++i) {
          PmemConfig p;
          p.path = TRY(in.string(kMaxString));
          p.read_only = TRY(flag(in));
          c.pmems.push_back(std::move(p));
        }
        break;
      }
      case TailRecord::kVsock: {
        VsockConfig v;
        v.guest_cid = TRY(in.u64());
        v.socket_path = TRY(in.string(kMaxString));
        c.vsock = v;
        break;
      }
      case TailRecord::kConsole: {
        c.virtio_console = TRY(flag(in));
        uint32_t n = TRY(in.u32());
        if (n > kMaxSerialPorts) return in.invalid(std::to_string(n) + " serial ports (at most 31)");
        for (uint32_t i = 0; i < n; ++i) {
          SerialPortConfig sp;
          sp.name = TRY(in.string(128));
          sp.socket_path = TRY(in.string(kMaxString));
          sp.pty = TRY(flag(in));
          c.serial_ports.push_back(std::move(sp));
        }
        if (!c.virtio_console && n == 0) return in.invalid("a console record without a console");
        break;
      }
      case TailRecord::kPasstNets: {
        uint32_t n = TRY(in.u32());
        if (n != c.nets.size()) return in.invalid("passt flags for " + std::to_string(n) + " nets");
        for (auto& net : c.nets) {
          net.passt = TRY(flag(in));
          if (net.passt && (net.user || !net.tap.empty() || !net.bridge.empty()))
            return in.invalid("a passt net that is also another kind");
        }
        break;
      }
      default:
        return in.invalid("unknown device record " + std::to_string(kind));
    }
  }
  return {};
}

}  // namespace

std::vector<std::byte> encode_machine(const MachineState& m) {
  ByteSink out;
  const VmConfig& c = m.config;
  out.u32(c.cpus);
  out.u64(c.memory_bytes);
  out.string(c.cpu);
  out.u8(c.transport == Transport::kMmio ? 1 : 0);
  out.u8(c.rng);
  out.u8(c.pvpanic);
  out.u8(c.hugepages);
  out.u32(static_cast<uint32_t>(m.regions.size()));
  for (const auto& r : m.regions) {
    out.u64(r.guest_address);
    out.u64(r.size);
    out.u64(r.file_offset);
  }
  out.u64(m.memory_file_bytes);
  out.u32(static_cast<uint32_t>(c.disks.size()));
  for (const auto& d : c.disks) encode_disk(out, d);
  out.u32(static_cast<uint32_t>(c.nets.size()));
  for (const auto& n : c.nets) encode_net(out, n);
  encode_tail(out, c);
  return out.take();
}

Result<MachineState> decode_machine(std::span<const std::byte> payload) {
  ByteSource in(payload, "machine section");
  MachineState m;
  VmConfig& c = m.config;
  c.cpus = TRY(in.u32());
  if (c.cpus == 0 || c.cpus > kMaxVcpus) return in.invalid(std::to_string(c.cpus) + " vCPUs (1 to 254)");
  c.memory_bytes = TRY(in.u64());
  if (c.memory_bytes < (16ull << 20) || c.memory_bytes > kMaxMemoryBytes || c.memory_bytes % kPage)
    return in.invalid("memory size " + std::to_string(c.memory_bytes) + " (16 MiB to 1 TiB, whole pages)");
  c.cpu = TRY(in.string(1024));
  uint8_t transport = TRY(in.u8());
  if (transport > 1) return in.invalid("unknown transport " + std::to_string(transport));
  c.transport = transport ? Transport::kMmio : Transport::kPci;
  c.rng = TRY(flag(in));
  c.pvpanic = TRY(flag(in));
  c.hugepages = TRY(flag(in));

  uint32_t regions = TRY(in.u32());
  if (regions == 0 || regions > kMaxRegions) return in.invalid(std::to_string(regions) + " memory regions (1 to 8)");
  uint64_t total = 0, next_offset = 0;
  for (uint32_t i = 0; i < regions; ++i) {
    MemoryRegionRecord r;
    r.guest_address = TRY(in.u64());
    r.size = TRY(in.u64());
    r.file_offset = TRY(in.u64());
    uint64_t end;
    if (r.size == 0 || r.size % kPage || r.guest_address % kPage ||
        __builtin_add_overflow(r.guest_address, r.size, &end) || end > (1ull << 52))
      return in.invalid("memory region " + std::to_string(i) + " is not a page-aligned range below 4 PiB");
    // Regions are stored in order, back to back in the file, and must not overlap.
    if (r.file_offset != next_offset)
      return in.invalid("memory region " + std::to_string(i) + " has a bad file offset");
    for (const auto& o : m.regions)
      if (r.guest_address < o.guest_address + o.size && o.guest_address < end)
        return in.invalid("memory region " + std::to_string(i) + " overlaps another");
    next_offset += r.size;
    total += r.size;
    m.regions.push_back(r);
  }
  if (total != c.memory_bytes)
    return in.invalid("memory regions add up to " + std::to_string(total) + " bytes, not the " +
                      std::to_string(c.memory_bytes) + " the machine has");
  m.memory_file_bytes = TRY(in.u64());
  if (m.memory_file_bytes != total) return in.invalid("memory file size does not match the layout");

  uint32_t disks = TRY(in.u32());
  if (disks > kMaxDisks) return in.invalid(std::to_string(disks) + " disks (at most 32)");
  for (uint32_t i = 0; i < disks; ++i) c.disks.push_back(TRY(decode_disk(in)));
  uint32_t nets = TRY(in.u32());
  if (nets > kMaxNets) return in.invalid(std::to_string(nets) + " network devices (at most 16)");
  for (uint32_t i = 0; i < nets; ++i) c.nets.push_back(TRY(decode_net(in)));
  TRY(decode_tail(in, c));
  TRY(in.expect_end());
  return m;
}

}  // namespace microvm::snapshot
