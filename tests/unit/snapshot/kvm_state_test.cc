#include "vmm/snapshot/kvm_state.h"

#include <gtest/gtest.h>

#include <cstring>

namespace microvm::snapshot {
namespace {

VcpuState sample_vcpu() {
  VcpuState s;
  s.cpuid.resize(3);
  s.cpuid[1].function = 7;
  s.regs.rip = 0x100123;
  s.regs.rax = 0xdeadbeef;
  s.sregs.cr3 = 0x9000;
  s.xsave.assign(4096, 0);
  s.xsave[160] = 0x5a;  // XMM0's first byte
  kvm_xcrs x{};
  x.nr_xcrs = 1;
  x.xcrs[0].value = 7;
  s.xcrs = x;
  s.msrs = {{0x10, 0, 12345}, {0x6e0, 0, 99}};
  s.lapic.regs[0x20] = 1;
  s.events.interrupt.injected = 1;
  s.mp_state.mp_state = KVM_MP_STATE_HALTED;
  s.tsc_khz = 2'000'000;
  return s;
}

// Record layout: u32 tag, u32 length, bytes. Finds a record's length field.
size_t record_length_offset(const std::vector<std::byte>& b, uint32_t tag) {
  size_t at = 0;
  while (at + 8 <= b.size()) {
    uint32_t t, len;
    std::memcpy(&t, b.data() + at, 4);
    std::memcpy(&len, b.data() + at + 4, 4);
    if (t == tag) return at + 4;
    at += 8 + len;
  }
  return SIZE_MAX;
}

TEST(VcpuState, RoundTrips) {
  auto s = sample_vcpu();
  auto d = decode_vcpu(encode_vcpu(s));
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_EQ(d->regs.rip, 0x100123u);
  EXPECT_EQ(d->regs.rax, 0xdeadbeefu);
  EXPECT_EQ(d->sregs.cr3, 0x9000u);
  EXPECT_EQ(d->xsave, s.xsave);
  ASSERT_TRUE(d->xcrs);
  EXPECT_EQ(d->xcrs->xcrs[0].value, 7u);
  ASSERT_EQ(d->msrs.size(), 2u);
  EXPECT_EQ(d->msrs[1].data, 99u);
  EXPECT_EQ(d->cpuid[1].function, 7u);
  EXPECT_EQ(d->lapic.regs[0x20], 1);
  EXPECT_EQ(d->events.interrupt.injected, 1);
  EXPECT_EQ(d->mp_state.mp_state, static_cast<uint32_t>(KVM_MP_STATE_HALTED));
  EXPECT_EQ(d->tsc_khz, 2'000'000u);
  EXPECT_FALSE(d->fpu);
}

TEST(VcpuState, TruncationsAreRefused) {
  auto b = encode_vcpu(sample_vcpu());
  for (size_t n = 0; n < b.size(); n += 7) EXPECT_FALSE(decode_vcpu(std::span(b).first(n))) << n;
}

TEST(VcpuState, WrongSizesCountsAndMissingRecordsAreRefused) {
  auto b = encode_vcpu(sample_vcpu());
  // A register record one byte short: the length no longer matches kvm_regs.
  auto regs = b;
  size_t at = record_length_offset(regs, 2);
  uint32_t len = sizeof(kvm_regs) - 1;
  std::memcpy(regs.data() + at, &len, 4);
  regs.erase(regs.begin() + static_cast<long>(at + 4));
  auto r = decode_vcpu(regs);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("vCPU registers"), std::string::npos) << r.error().what;

  // More MSRs than allowed.
  auto s = sample_vcpu();
  s.msrs.resize(kMaxMsrs + 1);
  for (size_t i = 0; i < s.msrs.size(); ++i) s.msrs[i].index = static_cast<uint32_t>(i);
  r = decode_vcpu(encode_vcpu(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("at most 2048"), std::string::npos) << r.error().what;

  // An MSR twice.
  s = sample_vcpu();
  s.msrs.push_back(s.msrs[0]);
  EXPECT_FALSE(decode_vcpu(encode_vcpu(s)));

  // An XSAVE area of a silly size.
  s = sample_vcpu();
  s.xsave.resize(100);
  EXPECT_FALSE(decode_vcpu(encode_vcpu(s)));

  // Neither FPU nor XSAVE.
  s = sample_vcpu();
  s.xsave.clear();
  r = decode_vcpu(encode_vcpu(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("neither FPU nor XSAVE"), std::string::npos);

  // Too many XCRs claimed.
  s = sample_vcpu();
  s.xcrs->nr_xcrs = 1000;
  EXPECT_FALSE(decode_vcpu(encode_vcpu(s)));

  // Unknown MP state.
  s = sample_vcpu();
  s.mp_state.mp_state = 77;
  EXPECT_FALSE(decode_vcpu(encode_vcpu(s)));

  // A record repeated, and an unknown record.
  auto twice = b;
  twice.insert(twice.end(), b.begin(), b.begin() + 8 + static_cast<long>(3 * sizeof(kvm_cpuid_entry2)));
  r = decode_vcpu(twice);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("twice"), std::string::npos) << r.error().what;
  auto unknown = b;
  uint32_t tag = 200, zero = 0;
  unknown.resize(unknown.size() + 8);
  std::memcpy(unknown.data() + b.size(), &tag, 4);
  std::memcpy(unknown.data() + b.size() + 4, &zero, 4);
  EXPECT_FALSE(decode_vcpu(unknown));
}

TEST(VmKvmState, RoundTripsAndChecksChipIds) {
  VmKvmState s;
  s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  s.ioapic.chip.ioapic.id = 3;
  s.clock.clock = 123456789;
  auto d = decode_vm_kvm(encode_vm_kvm(s));
  ASSERT_TRUE(d) << d.error().what;
  EXPECT_EQ(d->clock.clock, 123456789u);
  EXPECT_EQ(d->ioapic.chip.ioapic.id, 3u);

  s.pic_slave.chip_id = KVM_IRQCHIP_IOAPIC;
  EXPECT_FALSE(decode_vm_kvm(encode_vm_kvm(s)));
  auto b = encode_vm_kvm(s);
  EXPECT_FALSE(decode_vm_kvm(std::span(b).first(b.size() - 1)));
}

}  // namespace
}  // namespace microvm::snapshot
