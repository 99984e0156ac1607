#include "vmm/snapshot/kvm_state_io.h"

#include <cpuid.h>

#include <algorithm>
#include <cstring>

namespace microvm::snapshot {
namespace {

constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrTscDeadline = 0x6e0;

// Restore order: the TSC before anything computed from it (TSC_DEADLINE last, after the
// LAPIC is back in TSC-deadline mode), the rest as KVM lists them.
int msr_rank(uint32_t index) {
  if (index == kMsrTsc) return 0;
  if (index == kMsrTscDeadline) return 2;
  return 1;
}

}  // namespace

Result<std::vector<uint32_t>> saveable_msrs(const Kvm& kvm, const VcpuFd& vcpu) {
  auto all = TRY(kvm.msr_index_list());
  std::vector<uint32_t> ok;
  // KVM_GET_MSRS stops at the first MSR it refuses: read from there on, drop the refused
  // one, continue. One ioctl per refused MSR plus one.
  size_t start = 0;
  while (start < all.size()) {
    std::vector<kvm_msr_entry> batch(all.size() - start);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].index = all[start + i];
    size_t n = TRY(vcpu.get_msrs(batch));
    for (size_t i = 0; i < n; ++i) ok.push_back(batch[i].index);
    start += n + 1;  // skip the refused one (or end)
  }
  std::stable_sort(ok.begin(), ok.end(), [](uint32_t a, uint32_t b) { return msr_rank(a) < msr_rank(b); });
  return ok;
}

Result<VcpuState> capture_vcpu(const VcpuFd& vcpu, const std::vector<uint32_t>& msrs, size_t xsave_size) {
  VcpuState s;
  s.cpuid = TRY(vcpu.get_cpuid()).entries;
  s.regs = TRY(vcpu.get_regs());
  s.sregs = TRY(vcpu.get_sregs());
  if (auto xsave = vcpu.get_xsave(xsave_size); xsave)
    s.xsave = std::move(*xsave);
  else
    s.fpu = TRY(vcpu.get_fpu());
  if (auto xcrs = vcpu.get_xcrs(); xcrs) s.xcrs = *xcrs;
  s.msrs.resize(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) s.msrs[i].index = msrs[i];
  size_t n = TRY(vcpu.get_msrs(s.msrs));
  if (n != msrs.size()) return fail("KVM_GET_MSRS refused MSR " + std::to_string(msrs[n]) + " it accepted before");
  s.lapic = TRY(vcpu.get_lapic());
  s.events = TRY(vcpu.get_vcpu_events());
  s.debugregs = TRY(vcpu.get_debugregs());
  s.mp_state = TRY(vcpu.get_mp_state());
  if (auto khz = vcpu.get_tsc_khz(); khz) s.tsc_khz = *khz;
  return s;
}

Result<void> prepare_vcpu(const VcpuFd& vcpu, const VcpuState& s) {
  CpuidEntries cpuid;
  cpuid.entries = s.cpuid;
  TRY(vcpu.set_cpuid(cpuid));
  if (s.tsc_khz) {
    auto current = vcpu.get_tsc_khz();
    if (!current || *current != s.tsc_khz) {
      if (auto set = vcpu.set_tsc_khz(s.tsc_khz); !set)
        return std::unexpected(set.error().context("the snapshot's guest TSC runs at " + std::to_string(s.tsc_khz) +
                                                   " kHz and this host cannot scale to it"));
    }
  }
  return {};
}

Result<void> apply_vcpu_state(const VcpuFd& vcpu, const VcpuState& s, size_t xsave_size) {
  TRY(vcpu.set_sregs(s.sregs));
  TRY(vcpu.set_regs(s.regs));
  if (!s.xsave.empty()) {
    if (s.xsave.size() != xsave_size)
      return fail(EINVAL, "snapshot XSAVE area is " + std::to_string(s.xsave.size()) +
                              " bytes; KVM on this host uses " + std::to_string(xsave_size));
    TRY(vcpu.set_xsave(s.xsave));
  } else {
    TRY(vcpu.set_fpu(*s.fpu));
  }
  if (s.xcrs) TRY(vcpu.set_xcrs(*s.xcrs));
  TRY(vcpu.set_mp_state(s.mp_state));
  TRY(vcpu.set_lapic(s.lapic));
  TRY(vcpu.set_msrs(s.msrs));
  TRY(vcpu.set_vcpu_events(s.events));
  TRY(vcpu.set_debugregs(s.debugregs));
  return {};
}

Result<void> apply_vcpu(const VcpuFd& vcpu, const VcpuState& s, size_t xsave_size) {
  TRY(prepare_vcpu(vcpu, s));
  return apply_vcpu_state(vcpu, s, xsave_size);
}

Result<std::optional<int64_t>> tsc_drift(const VcpuFd& vcpu, const VcpuState& s) {
  auto saved = std::find_if(s.msrs.begin(), s.msrs.end(), [](const kvm_msr_entry& m) { return m.index == kMsrTsc; });
  if (saved == s.msrs.end()) return std::optional<int64_t>{};
  kvm_msr_entry now{};
  now.index = kMsrTsc;
  if (TRY(vcpu.get_msrs(std::span(&now, 1))) != 1) return fail("KVM_GET_MSRS refused the TSC it took");
  return std::optional<int64_t>{static_cast<int64_t>(now.data - saved->data)};
}

Result<VmKvmState> capture_vm(const VmFd& vm) {
  VmKvmState s;
  s.pic_master = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER));
  s.pic_slave = TRY(vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE));
  s.ioapic = TRY(vm.get_irqchip(KVM_IRQCHIP_IOAPIC));
  s.pit = TRY(vm.get_pit2());
  s.clock = TRY(vm.get_clock());
  return s;
}

Result<void> apply_vm(const VmFd& vm, const VmKvmState& s) {
  TRY(vm.set_irqchip(s.pic_master));
  TRY(vm.set_irqchip(s.pic_slave));
  TRY(vm.set_irqchip(s.ioapic));
  TRY(vm.set_pit2(s.pit));
  TRY(vm.set_clock(s.clock));
  return {};
}

CpuSignature host_cpu_signature() {
  CpuSignature c;
  unsigned a = 0, b = 0, cx = 0, d = 0;
  __cpuid(0, a, b, cx, d);
  unsigned max_leaf = a;
  std::memcpy(c.vendor, &b, 4);
  std::memcpy(c.vendor + 4, &d, 4);
  std::memcpy(c.vendor + 8, &cx, 4);
  __cpuid(1, a, b, cx, d);
  c.leaf1_eax = a;
  c.leaf1_ecx = cx & ~(1u << 27);  // OSXSAVE mirrors CR4 of whoever runs the instruction
  c.leaf1_edx = d;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, cx, d);
    c.leaf7_ebx = b;
    c.leaf7_ecx = cx & ~(1u << 4);  // OSPKE, likewise
    c.leaf7_edx = d;
  }
  if (max_leaf >= 0xd) {
    __cpuid_count(0xd, 0, a, b, cx, d);
    c.leafd_eax = a;
    c.leafd_edx = d;
  }
  __cpuid(0x80000000, a, b, cx, d);
  if (a >= 0x80000001) {
    __cpuid(0x80000001, a, b, cx, d);
    c.ext1_ecx = cx;
    c.ext1_edx = d;
  }
  return c;
}

}  // namespace microvm::snapshot
