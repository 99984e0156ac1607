#include "vmm/snapshot/machine_state.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string_view>
#include <tuple>

namespace microvm::snapshot {
namespace {

MachineState sample() {
  MachineState m;
  m.config.cpus = 2;
  m.config.memory_bytes = 64ull << 20;
  m.config.cpu = "host,-avx2";
  m.config.transport = Transport::kMmio;
  m.config.rng = true;
  DiskConfig d;
  d.path = "/images/root.qcow2";
  d.format = DiskFormat::kQcow2;
  d.cache = CacheMode::kNone;
  d.backing = "/images/base.raw";
  d.backing_format = DiskFormat::kRaw;
  d.engine = EngineKind::kSync;
  d.queues = 2;
  m.config.disks.push_back(d);
  NetConfig n;
  n.user = true;
  n.hostfwd = {"tcp::2222-:22"};
  m.config.nets.push_back(n);
  NetConfig tap;
  tap.tap = "tap0";
  tap.vhost = VhostMode::kOff;
  m.config.nets.push_back(tap);
  m.regions.push_back({0, 64ull << 20, 0});
  m.memory_file_bytes = 64ull << 20;
  return m;
}

TEST(MachineState, RoundTrips) {
  auto d = decode_machine(encode_machine(sample()));
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_EQ(d->config.cpus, 2u);
  EXPECT_EQ(d->config.cpu, "host,-avx2");
  EXPECT_EQ(d->config.transport, Transport::kMmio);
  ASSERT_EQ(d->config.disks.size(), 1u);
  EXPECT_EQ(d->config.disks[0].path, "/images/root.qcow2");
  EXPECT_EQ(d->config.disks[0].queues, 2u);
  EXPECT_EQ(d->config.disks[0].format, DiskFormat::kQcow2);
  EXPECT_EQ(d->config.disks[0].cache, CacheMode::kNone);
  EXPECT_EQ(d->config.disks[0].backing_format, DiskFormat::kRaw);
  EXPECT_EQ(d->config.disks[0].engine, EngineKind::kSync);
  ASSERT_EQ(d->config.nets.size(), 2u);
  EXPECT_EQ(d->config.nets[0].hostfwd[0], "tcp::2222-:22");
  EXPECT_EQ(d->config.nets[0].vhost, VhostMode::kAuto);
  EXPECT_EQ(d->config.nets[1].vhost, VhostMode::kOff);
  ASSERT_EQ(d->regions.size(), 1u);
}

TEST(MachineState, PasstNetsRoundTripAndOnlyAlone) {
  auto m = sample();
  NetConfig p;
  p.passt = true;
  p.hostfwd = {"tcp::8080-:80"};
  m.config.nets.push_back(p);
  auto d = decode_machine(encode_machine(m));
  ASSERT_TRUE(d) << d.error().what;
  ASSERT_EQ(d->config.nets.size(), 3u);
  EXPECT_FALSE(d->config.nets[0].passt);
  EXPECT_FALSE(d->config.nets[1].passt);
  EXPECT_TRUE(d->config.nets[2].passt);
  EXPECT_FALSE(d->config.nets[2].user);
  EXPECT_EQ(d->config.nets[2].hostfwd[0], "tcp::8080-:80");
  // A file claiming a net is both user and passt is refused.
  m.config.nets[2].user = true;
  EXPECT_FALSE(decode_machine(encode_machine(m)));
}

TEST(MachineState, OutOfRangeValuesAreRefused) {
  auto m = sample();
  m.config.cpus = 0;
  EXPECT_FALSE(decode_machine(encode_machine(m)));
  m.config.cpus = 255;
  auto r = decode_machine(encode_machine(m));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("255 vCPUs"), std::string::npos) << r.error().what;

  m = sample();
  m.regions[0].size = 32ull << 20;  // regions no longer add up to the memory size
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.regions = {{0, 32ull << 20, 0}, {16ull << 20, 32ull << 20, 32ull << 20}};  // overlapping GPAs
  r = decode_machine(encode_machine(m));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("overlaps"), std::string::npos) << r.error().what;

  m = sample();
  m.regions = {{~0ull - 4095, 64ull << 20, 0}};  // GPA + size overflows
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.regions[0].file_offset = 4096;
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.regions.assign(kMaxRegions + 1, {0, 4096, 0});
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.config.disks.assign(kMaxDisks + 1, m.config.disks[0]);
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.config.disks[0].path.assign(kMaxString + 1, 'x');
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  m = sample();
  m.memory_file_bytes = 1;
  EXPECT_FALSE(decode_machine(encode_machine(m)));

  auto b = encode_machine(sample());
  for (size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(decode_machine(std::span(b).first(n))) << n;
  b.push_back(std::byte{0});
  EXPECT_FALSE(decode_machine(b));
}

// The file stores the enums by name (docs/snapshot-format.md): a name this build does not
// know is refused while decoding, naming the field, not at the first use of the value.
TEST(MachineState, UnknownNamesAreRefused) {
  auto b = encode_machine(sample());
  auto replace = [&](std::string_view from, std::string_view to) {
    auto copy = b;
    std::string_view text(reinterpret_cast<const char*>(copy.data()), copy.size());
    auto at = text.rfind(from);  // the last: "qcow2" is also in the path
    EXPECT_NE(at, std::string_view::npos) << from;
    if (at != std::string_view::npos) std::memcpy(copy.data() + at, to.data(), to.size());
    return decode_machine(copy);
  };
  ASSERT_TRUE(replace("qcow2", "qcow2"));
  for (auto [from, to, what] : {std::tuple{"qcow2", "qcowX", "disk format"},
                                {"none", "nonE", "disk cache mode"},
                                {"sync", "synk", "disk I/O engine"},
                                {"off", "ofF", "vhost mode"}}) {
    auto r = replace(from, to);
    ASSERT_FALSE(r) << from;
    EXPECT_NE(r.error().what.find(what), std::string::npos) << r.error().what;
  }
}

TEST(MachineState, DevicesAfterTheNetsRoundTrip) {
  MachineState m = sample();
  m.config.balloon =
      BalloonConfig{.size_bytes = 8 << 20, .deflate_on_oom = true, .free_page_reporting = true, .stats_interval_s = 5};
  m.config.pmems = {{"/images/a.img", false}, {"/images/b.img", true}};
  m.config.vsock = VsockConfig{.guest_cid = 42, .socket_path = "/run/v.sock"};
  m.config.virtio_console = true;
  m.config.serial_ports = {{"agent", "/run/agent.sock", false}, {"tty", "", true}};
  auto d = decode_machine(encode_machine(m));
  ASSERT_TRUE(d) << d.error().what;
  ASSERT_TRUE(d->config.balloon.has_value());
  EXPECT_EQ(d->config.balloon->size_bytes, 8u << 20);
  EXPECT_TRUE(d->config.balloon->deflate_on_oom);
  EXPECT_TRUE(d->config.balloon->free_page_reporting);
  EXPECT_EQ(d->config.balloon->stats_interval_s, 5u);
  ASSERT_EQ(d->config.pmems.size(), 2u);
  EXPECT_EQ(d->config.pmems[1].path, "/images/b.img");
  EXPECT_TRUE(d->config.pmems[1].read_only);
  ASSERT_TRUE(d->config.vsock.has_value());
  EXPECT_EQ(d->config.vsock->guest_cid, 42u);
  EXPECT_EQ(d->config.vsock->socket_path, "/run/v.sock");
  EXPECT_TRUE(d->config.virtio_console);
  ASSERT_EQ(d->config.serial_ports.size(), 2u);
  EXPECT_EQ(d->config.serial_ports[0].socket_path, "/run/agent.sock");
  EXPECT_TRUE(d->config.serial_ports[1].pty);

  // Without them, the file ends after the nets (as snapshots written before them do).
  auto plain = decode_machine(encode_machine(sample()));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->config.balloon || plain->config.vsock || plain->config.virtio_console);
  EXPECT_TRUE(plain->config.pmems.empty());

  // Hostile tails: a record repeated or out of order, an unknown one, counts out of range.
  auto base = encode_machine(sample());
  auto with = [&](std::vector<uint8_t> tail) {
    auto b = base;
    for (uint8_t v : tail) b.push_back(std::byte{v});
    return decode_machine(b);
  };
  EXPECT_FALSE(with({9}));
  EXPECT_FALSE(with({2, 0, 0, 0, 0}));                                            // zero pmems
  EXPECT_FALSE(with({2, 9, 0, 0, 0}));                                            // nine pmems
  EXPECT_FALSE(with({4, 0, 0, 0, 0, 0}));                                         // a console record with no console
  EXPECT_FALSE(with({4, 1, 32, 0, 0, 0}));                                        // 32 named ports
  EXPECT_FALSE(with({4, 2, 0, 0, 0, 0}));                                         // a flag of 2
  EXPECT_TRUE(with({4, 1, 0, 0, 0, 0}));                                          // hvc0 only
  EXPECT_FALSE(with({4, 1, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0}));                       // twice
  EXPECT_FALSE(with({4, 1, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));  // out of order
  // Cut anywhere: only the three cuts between whole records decode (to fewer devices).
  auto full = encode_machine(m);
  size_t decoded = 0;
  for (size_t n = base.size() + 1; n < full.size(); ++n)
    decoded += decode_machine(std::span(full).first(n)).has_value();
  EXPECT_EQ(decoded, 3u);
}

}  // namespace
}  // namespace microvm::snapshot
