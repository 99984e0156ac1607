#include "vmm/vcpu_setup.h"

#include <array>
#include <cstring>

namespace microvm {
namespace {

constexpr uint32_t kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176;
constexpr uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;
constexpr uint32_t kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;  // MTRRs on, default type WB

constexpr uint64_t kCr0Pe = 1, kCr0Mp = 2, kCr0Et = 0x10, kCr0Ne = 0x20, kCr0Pg = 0x80000000;
constexpr uint64_t kCr4Pae = 0x20;
constexpr uint64_t kEferLme = 0x100, kEferLma = 0x400;

constexpr uint32_t kApicLvtLint0 = 0x350, kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 7 << 8, kDeliveryNmi = 4 << 8;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = code ? 0 : 1;  // L=1 requires D=0 for 64-bit code
  s.s = 1;
  s.l = code ? 1 : 0;
  s.g = 1;
  return s;
}

void set_apic_reg(kvm_lapic_state& l, uint32_t reg, uint32_t value) { std::memcpy(&l.regs[reg], &value, 4); }
uint32_t get_apic_reg(const kvm_lapic_state& l, uint32_t reg) {
  uint32_t v;
  std::memcpy(&v, &l.regs[reg], 4);
  return v;
}

}  // namespace

Result<void> setup_vcpu_common(const VcpuFd& vcpu) {
  const std::array<kvm_msr_entry, 10> msrs = {{
      {kMsrSysenterCs, 0, 0},
      {kMsrSysenterEsp, 0, 0},
      {kMsrSysenterEip, 0, 0},
      {kMsrStar, 0, 0},
      {kMsrLstar, 0, 0},
      {kMsrCstar, 0, 0},
      {kMsrSyscallMask, 0, 0},
      {kMsrKernelGsBase, 0, 0},
      {kMsrMiscEnable, 0, kMiscEnableFastString},
      {kMsrMtrrDefType, 0, kMtrrEnableWriteBack},
  }};
  TRY(vcpu.set_msrs(msrs));

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word
  fpu.mxcsr = 0x1f80;  // SSE exceptions masked
  TRY(vcpu.set_fpu(fpu));

  // LINT0 as ExtINT and LINT1 as NMI, as PC firmware leaves them.
  auto lapic = TRY(vcpu.get_lapic());
  set_apic_reg(lapic, kApicLvtLint0, (get_apic_reg(lapic, kApicLvtLint0) & ~0x700u) | kDeliveryExtInt);
  set_apic_reg(lapic, kApicLvtLint1, (get_apic_reg(lapic, kApicLvtLint1) & ~0x700u) | kDeliveryNmi);
  TRY(vcpu.set_lapic(lapic));
  return {};
}

Result<void> setup_boot_vcpu(const VcpuFd& vcpu, const LongModeTables& tables, GuestAddress entry,
                             GuestAddress zero_page) {
  auto sregs = TRY(vcpu.get_sregs());
  sregs.cs = flat_segment(kBootCodeSelector, 0xb, true);           // execute/read, accessed
  kvm_segment data = flat_segment(kBootDataSelector, 0x3, false);  // read/write, accessed
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.gdt.base = tables.gdt.raw();
  sregs.gdt.limit = tables.gdt_limit;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Pg;
  sregs.cr3 = tables.pml4.raw();
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
  TRY(vcpu.set_sregs(sregs));

  kvm_regs regs{};
  regs.rflags = 2;  // bit 1 is reserved-one; interrupts off
  regs.rip = entry.raw();
  regs.rsi = zero_page.raw();
  regs.rsp = 0x1fff0;  // scratch stack below the command line; Linux sets up its own
  TRY(vcpu.set_regs(regs));
  return {};
}

}  // namespace microvm
