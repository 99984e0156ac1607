// KVM state capture and apply (vmm/snapshot/kvm_state_io.h) on two real vCPUs, without a
// guest: distinctive x87/SSE registers, general registers, MSRs, a pending NMI, LAPIC and
// IOAPIC contents are set on one VM, captured, sent through the state file encoding, applied
// to a fresh VM and read back. Covers the FPU/XSAVE path the firmware guests cannot (this
// project's test host emulates guest kernel mode without SSE state).
#include <gtest/gtest.h>

#include <cstring>

#include "tests/integration/support/vm_process.h"
#include "vmm/cpu_model.h"
#include "vmm/kvm.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/kvm_state_io.h"
#include "vmm/snapshot/snapshot_file.h"

namespace microvm::snapshot {
namespace {

constexpr unsigned kVcpus = 2;
constexpr uint32_t kMsrSysenterEip = 0x176, kMsrLstar = 0xc0000082;

struct TestVm {
  Kvm kvm;
  VmFd vm;
  std::vector<VcpuFd> vcpus;
};

TestVm make_vm() {
  auto kvm = Kvm::open();
  EXPECT_TRUE(kvm) << kvm.error().what;
  auto vm = kvm->create_vm();
  EXPECT_TRUE(vm);
  EXPECT_TRUE(vm->set_tss_addr(0xfffbd000));
  EXPECT_TRUE(vm->create_irqchip());
  EXPECT_TRUE(vm->create_pit2());
  auto supported = kvm->supported_cpuid();
  auto model = CpuModel::parse("host");
  std::vector<VcpuFd> vcpus;
  for (unsigned i = 0; i < kVcpus; ++i) {
    auto v = vm->create_vcpu(i, kvm->vcpu_mmap_size());
    EXPECT_TRUE(v) << v.error().what;
    EXPECT_TRUE(v->set_cpuid(build_cpuid(*supported, *model, i, kVcpus)));
    vcpus.push_back(std::move(*v));
  }
  return TestVm{std::move(*kvm), std::move(*vm), std::move(vcpus)};
}

class SnapshotKvmStateTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
};

TEST_F(SnapshotKvmStateTest, EveryPieceSurvivesCaptureEncodeAndApply) {
  TestVm a = make_vm();
  const VcpuFd& v1 = a.vcpus[1];

  // x87 and SSE state as the guest's own XSAVE would leave it (KVM_SET_FPU does not mark
  // the components in use, so XSAVE would report them in their initial state).
  const size_t xsave_size = a.kvm.xsave_size();
  auto area = v1.get_xsave(xsave_size);
  ASSERT_TRUE(area) << area.error().what;
  kvm_fpu fpu{};
  fpu.fcw = 0x27f;
  fpu.mxcsr = 0x1fa0;
  for (int r = 0; r < 8; ++r)
    for (int b = 0; b < 10; ++b) fpu.fpr[r][b] = static_cast<uint8_t>(0x10 * r + b);
  for (int r = 0; r < 16; ++r)
    for (int b = 0; b < 16; ++b) fpu.xmm[r][b] = static_cast<uint8_t>(0xa0 + r * 3 + b);
  std::vector<uint8_t>& x = *area;
  std::memcpy(&x[0], &fpu.fcw, 2);
  std::memcpy(&x[24], &fpu.mxcsr, 4);
  for (int r = 0; r < 8; ++r) std::memcpy(&x[32 + 16 * r], fpu.fpr[r], 10);
  for (int r = 0; r < 16; ++r) std::memcpy(&x[160 + 16 * r], fpu.xmm[r], 16);
  x[512] |= 0x3;  // XSTATE_BV: x87 and SSE in use
  ASSERT_TRUE(v1.set_xsave(x));
  // What KVM holds now is the reference (a host may normalise a field, e.g. MXCSR).
  const kvm_fpu before = *v1.get_fpu();
  EXPECT_EQ(before.fcw, 0x27f);
  EXPECT_EQ(std::memcmp(before.xmm, fpu.xmm, sizeof fpu.xmm), 0);

  kvm_regs regs = *v1.get_regs();
  regs.rax = 0x1111222233334444;
  regs.r15 = 0x5555666677778888;
  regs.rip = 0xfff0;
  regs.rflags = 0x202;
  ASSERT_TRUE(v1.set_regs(regs));
  const kvm_msr_entry msrs[] = {{kMsrSysenterEip, 0, 0xffffffff81000000}, {kMsrLstar, 0, 0xffffffff81234560}};
  ASSERT_TRUE(v1.set_msrs(msrs));

  kvm_vcpu_events events = *v1.get_vcpu_events();
  events.nmi.pending = 1;
  events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
  ASSERT_TRUE(v1.set_vcpu_events(events));

  kvm_lapic_state lapic = *v1.get_lapic();
  const uint32_t tpr = 0x20;
  std::memcpy(&lapic.regs[0x80], &tpr, 4);
  ASSERT_TRUE(v1.set_lapic(lapic));

  kvm_irqchip ioapic = *a.vm.get_irqchip(KVM_IRQCHIP_IOAPIC);
  ioapic.chip.ioapic.redirtbl[5].bits = 0x0000000000010045ull;  // masked, vector 0x45
  ASSERT_TRUE(a.vm.set_irqchip(ioapic));

  // Capture both vCPUs and the VM, through the file encoding.
  auto msr_list = saveable_msrs(a.kvm, a.vcpus[0]);
  ASSERT_TRUE(msr_list) << msr_list.error().what;
  EXPECT_GT(msr_list->size(), 10u);
  SnapshotFile file;
  for (unsigned i = 0; i < kVcpus; ++i) {
    auto s = capture_vcpu(a.vcpus[i], *msr_list, xsave_size);
    ASSERT_TRUE(s) << s.error().what;
    file.sections.push_back({SectionType::kVcpu, i, encode_vcpu(*s)});
  }
  auto vm_state = capture_vm(a.vm);
  ASSERT_TRUE(vm_state) << vm_state.error().what;
  file.sections.push_back({SectionType::kVmKvm, 0, encode_vm_kvm(*vm_state)});
  auto parsed = parse_snapshot(encode_snapshot(file));
  ASSERT_TRUE(parsed) << parsed.error().what;

  TestVm b = make_vm();
  for (unsigned i = 0; i < kVcpus; ++i) {
    auto s = decode_vcpu(parsed->find(SectionType::kVcpu, i)->payload);
    ASSERT_TRUE(s) << s.error().what;
    auto applied = apply_vcpu(b.vcpus[i], *s, xsave_size);
    ASSERT_TRUE(applied) << "vCPU " << i << ": " << applied.error().what;
  }
  auto vm_decoded = decode_vm_kvm(parsed->find(SectionType::kVmKvm)->payload);
  ASSERT_TRUE(vm_decoded);
  ASSERT_TRUE(apply_vm(b.vm, *vm_decoded));

  const VcpuFd& w1 = b.vcpus[1];
  kvm_fpu got_fpu = *w1.get_fpu();
  EXPECT_EQ(got_fpu.fcw, 0x27f);
  EXPECT_EQ(got_fpu.mxcsr, before.mxcsr);
  EXPECT_EQ(std::memcmp(got_fpu.fpr, fpu.fpr, sizeof fpu.fpr), 0);
  EXPECT_EQ(std::memcmp(got_fpu.xmm, fpu.xmm, sizeof fpu.xmm), 0);
  EXPECT_EQ(std::memcmp(&got_fpu, &before, sizeof before), 0);
  kvm_regs got_regs = *w1.get_regs();
  EXPECT_EQ(got_regs.rax, regs.rax);
  EXPECT_EQ(got_regs.r15, regs.r15);
  EXPECT_EQ(got_regs.rip, regs.rip);
  kvm_msr_entry got_msrs[] = {{kMsrSysenterEip, 0, 0}, {kMsrLstar, 0, 0}};
  ASSERT_EQ(*w1.get_msrs(got_msrs), 2u);
  EXPECT_EQ(got_msrs[0].data, msrs[0].data);
  EXPECT_EQ(got_msrs[1].data, msrs[1].data);
  EXPECT_EQ(w1.get_vcpu_events()->nmi.pending, 1);
  EXPECT_EQ(b.vcpus[0].get_vcpu_events()->nmi.pending, 0);
  uint32_t got_tpr;
  std::memcpy(&got_tpr, &w1.get_lapic()->regs[0x80], 4);
  EXPECT_EQ(got_tpr, tpr);
  // vCPU 1 keeps its own APIC ID (in the LAPIC's ID register, bits 24-31).
  uint32_t apic_id;
  std::memcpy(&apic_id, &w1.get_lapic()->regs[0x20], 4);
  EXPECT_EQ(apic_id >> 24, 1u);
  EXPECT_EQ(b.vm.get_irqchip(KVM_IRQCHIP_IOAPIC)->chip.ioapic.redirtbl[5].bits, 0x0000000000010045ull);
  // kvmclock continues from the captured value, not from zero or the host's time.
  auto clock = b.vm.get_clock();
  ASSERT_TRUE(clock);
  EXPECT_GE(clock->clock, vm_state->clock.clock);
  EXPECT_LT(clock->clock - vm_state->clock.clock, 60'000'000'000ull);
}

TEST_F(SnapshotKvmStateTest, AnXsaveAreaOfAnotherSizeIsRefused) {
  TestVm a = make_vm();
  auto msr_list = saveable_msrs(a.kvm, a.vcpus[0]);
  ASSERT_TRUE(msr_list);
  auto s = capture_vcpu(a.vcpus[0], *msr_list, a.kvm.xsave_size());
  ASSERT_TRUE(s);
  if (s->xsave.empty()) GTEST_FAIL() << "this host's KVM has no KVM_GET_XSAVE";
  s->xsave.resize(s->xsave.size() + 64);
  auto applied = apply_vcpu(a.vcpus[0], *s, a.kvm.xsave_size());
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().what.find("XSAVE area"), std::string::npos) << applied.error().what;
}

}  // namespace
}  // namespace microvm::snapshot
