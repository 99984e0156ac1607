#include "vmm/config_check.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

HostLimits host_24g() {
  HostLimits h;
  h.phys_addr_bits = 40;
  h.mem_total = 24 * kGiB;
  h.swap_total = 2 * kGiB;
  h.overcommit_memory = 0;
  return h;
}

std::string error_of(const VmConfig& c, const HostLimits& h = host_24g()) {
  auto r = check_vm_config(c, h);
  EXPECT_FALSE(r);
  if (r) return "";
  EXPECT_EQ(r.error().code, EINVAL);
  return r.error().what;
}

TEST(ConfigCheck, DefaultConfigPasses) { EXPECT_TRUE(check_vm_config(VmConfig{}, host_24g())); }

TEST(ConfigCheck, MemoryBelowMinimumOrAboveTheHostIsRefusedNamingTheFlag) {
  VmConfig c;
  c.memory_bytes = 0;
  EXPECT_NE(error_of(c).find("--memory must be at least 16 MiB"), std::string::npos);
  c.memory_bytes = 27 * kGiB;  // more than RAM + swap
  EXPECT_NE(error_of(c).find("more than this host has"), std::string::npos);
  c.memory_bytes = 25 * kGiB;  // within RAM + swap
  EXPECT_TRUE(check_vm_config(c, host_24g()));
}

TEST(ConfigCheck, OvercommitAlwaysLiftsTheHostMemoryCheckButNotKvmsLimit) {
  HostLimits h = host_24g();
  h.overcommit_memory = 1;
  VmConfig c;
  c.memory_bytes = 500 * kGiB;
  EXPECT_TRUE(check_vm_config(c, h));
  c.memory_bytes = 1024 * kGiB;  // 40 address bits: 1 TiB of guest-physical space, minus the hole
  EXPECT_NE(error_of(c, h).find("more than KVM can map"), std::string::npos);
  h.phys_addr_bits = 52;
  c.memory_bytes = 10 * 1024 * kGiB;  // above one KVM memory slot (8 TiB)
  EXPECT_NE(error_of(c, h).find("more than KVM can map"), std::string::npos);
}

TEST(ConfigCheck, RamAboveTheHoleEndsPastFourGiB) {
  EXPECT_EQ(guest_ram_end(512ull << 20), 512ull << 20);
  EXPECT_GT(guest_ram_end(8 * kGiB), 8 * kGiB);  // the MMIO gap below 4 GiB moves RAM up
}

TEST(ConfigCheck, SyntaxIsCheckedBeforeAnythingIsCreated) {
  VmConfig c;
  c.cpus = 0;
  EXPECT_NE(error_of(c).find("--cpus"), std::string::npos);
  c = VmConfig{};
  c.cpu = "foo";
  EXPECT_NE(error_of(c).find("unknown CPU model"), std::string::npos);
  c = VmConfig{};
  NetConfig n;
  n.tap = "tap0";
  n.mac = "zz";
  c.nets.push_back(n);
  EXPECT_NE(error_of(c).find("bad MAC address"), std::string::npos);
  c = VmConfig{};
  c.nets.push_back(NetConfig{});  // none of tap, bridge, user
  EXPECT_NE(error_of(c).find("exactly one"), std::string::npos);
  c = VmConfig{};
  DiskConfig d;
  d.path = "x.img";
  d.format = static_cast<DiskFormat>(7);  // an embedder's cast: not one of the enum's values
  c.disks.push_back(d);
  EXPECT_NE(error_of(c).find("format is not a DiskFormat"), std::string::npos);
  c.disks[0].format = DiskFormat::kRaw;
  c.disks[0].engine = static_cast<EngineKind>(9);
  EXPECT_NE(error_of(c).find("engine is not an EngineKind"), std::string::npos);
  c.disks[0].engine = EngineKind::kAuto;
  c.disks[0].serial = std::string(21, 's');
  EXPECT_NE(error_of(c).find("serial"), std::string::npos);
  c = VmConfig{};
  ShareConfig s;
  s.socket_path = "/run/fs.sock";
  c.shares.push_back(s);
  EXPECT_NE(error_of(c).find("needs tag="), std::string::npos);
}

TEST(ConfigCheck, ReadsThisHostsLimits) {
  HostLimits h = read_host_limits();
  EXPECT_GE(h.phys_addr_bits, 32u);
  EXPECT_GT(h.mem_total, 64ull << 20);
}

}  // namespace
}  // namespace microvm
