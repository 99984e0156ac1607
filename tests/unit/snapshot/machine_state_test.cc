#include "vmm/snapshot/machine_state.h"

#include <gtest/gtest.h>

#include <cstring>

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
  d.format = "qcow2";
  d.queues = 2;
  m.config.disks.push_back(d);
  NetConfig n;
  n.user = true;
  n.hostfwd = {"tcp::2222-:22"};
  m.config.nets.push_back(n);
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
  ASSERT_EQ(d->config.nets.size(), 1u);
  EXPECT_EQ(d->config.nets[0].hostfwd[0], "tcp::2222-:22");
  ASSERT_EQ(d->regions.size(), 1u);
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

}  // namespace
}  // namespace microvm::snapshot
