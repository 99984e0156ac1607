#include "vmm/snapshot/kvm_state.h"

#include <cstring>
#include <string>

#include "vmm/snapshot/byte_codec.h"

namespace microvm::snapshot {
namespace {

// Record tags inside a vCPU section. Each record: u32 tag, u32 length, bytes.
enum VcpuTag : uint32_t {
  kTagCpuid = 1,
  kTagRegs = 2,
  kTagSregs = 3,
  kTagFpu = 4,
  kTagXsave = 5,
  kTagXcrs = 6,
  kTagMsrs = 7,
  kTagLapic = 8,
  kTagEvents = 9,
  kTagDebugregs = 10,
  kTagMpState = 11,
  kTagTscKhz = 12,
  kVcpuTagCount = 13,
};

enum VmTag : uint32_t {
  kTagPicMaster = 1,
  kTagPicSlave = 2,
  kTagIoapic = 3,
  kTagPit = 4,
  kTagClock = 5,
  kVmTagCount = 6,
};

void record(ByteSink& out, uint32_t tag, const void* p, size_t n) {
  out.u32(tag);
  out.u32(static_cast<uint32_t>(n));
  out.raw(p, n);
}

template <class T>
void record(ByteSink& out, uint32_t tag, const T& v) {
  record(out, tag, &v, sizeof v);
}

struct Record {
  uint32_t tag;
  std::span<const std::byte> data;
};

// Splits a section into records, refusing unknown or repeated tags.
Result<std::vector<Record>> split(std::span<const std::byte> payload, uint32_t tag_count, const char* what) {
  ByteSource in(payload, what);
  std::vector<Record> out;
  std::vector<bool> seen(tag_count, false);
  while (in.remaining()) {
    uint32_t tag = TRY(in.u32());
    uint32_t len = TRY(in.u32());
    if (tag == 0 || tag >= tag_count) return in.invalid("unknown record " + std::to_string(tag));
    if (seen[tag]) return in.invalid("record " + std::to_string(tag) + " appears twice");
    seen[tag] = true;
    auto data = TRY(in.take(len));
    out.push_back({tag, data});
  }
  return out;
}

template <class T>
Result<T> exact(const Record& r, const char* what) {
  if (r.data.size() != sizeof(T))
    return fail(EINVAL, std::string(what) + ": " + std::to_string(r.data.size()) + " bytes, expected " +
                            std::to_string(sizeof(T)));
  ByteSource in(r.data, what);
  return in.object<T>();
}

template <class T>
Result<std::vector<T>> list(const Record& r, size_t max, const char* what) {
  if (r.data.size() % sizeof(T) != 0)
    return fail(EINVAL,
                std::string(what) + ": " + std::to_string(r.data.size()) + " bytes is not a whole number of entries");
  size_t n = r.data.size() / sizeof(T);
  if (n > max)
    return fail(EINVAL,
                std::string(what) + ": " + std::to_string(n) + " entries (at most " + std::to_string(max) + ")");
  std::vector<T> v(n);
  if (n) std::memcpy(v.data(), r.data.data(), r.data.size());
  return v;
}

}  // namespace

std::vector<std::byte> encode_vcpu(const VcpuState& s) {
  ByteSink out;
  record(out, kTagCpuid, s.cpuid.data(), s.cpuid.size() * sizeof(kvm_cpuid_entry2));
  record(out, kTagRegs, s.regs);
  record(out, kTagSregs, s.sregs);
  if (s.fpu) record(out, kTagFpu, *s.fpu);
  if (!s.xsave.empty()) record(out, kTagXsave, s.xsave.data(), s.xsave.size());
  if (s.xcrs) record(out, kTagXcrs, *s.xcrs);
  record(out, kTagMsrs, s.msrs.data(), s.msrs.size() * sizeof(kvm_msr_entry));
  record(out, kTagLapic, s.lapic);
  record(out, kTagEvents, s.events);
  record(out, kTagDebugregs, s.debugregs);
  record(out, kTagMpState, s.mp_state);
  if (s.tsc_khz) record(out, kTagTscKhz, s.tsc_khz);
  return out.take();
}

Result<VcpuState> decode_vcpu(std::span<const std::byte> payload) {
  auto records = TRY(split(payload, kVcpuTagCount, "vCPU section"));
  VcpuState s;
  uint32_t have = 0;
  for (const auto& r : records) {
    have |= 1u << r.tag;
    switch (r.tag) {
      case kTagCpuid:
        s.cpuid = TRY(list<kvm_cpuid_entry2>(r, kMaxCpuidEntries, "vCPU CPUID"));
        break;
      case kTagRegs:
        s.regs = TRY(exact<kvm_regs>(r, "vCPU registers"));
        break;
      case kTagSregs:
        s.sregs = TRY(exact<kvm_sregs>(r, "vCPU special registers"));
        break;
      case kTagFpu:
        s.fpu = TRY(exact<kvm_fpu>(r, "vCPU FPU"));
        break;
      case kTagXsave:
        if (r.data.size() < kXsaveMinBytes || r.data.size() > kXsaveMaxBytes || r.data.size() % 64)
          return fail(EINVAL, "vCPU XSAVE area: " + std::to_string(r.data.size()) +
                                  " bytes (must be a multiple of 64 between 4 KiB and 1 MiB)");
        s.xsave.assign(reinterpret_cast<const uint8_t*>(r.data.data()),
                       reinterpret_cast<const uint8_t*>(r.data.data()) + r.data.size());
        break;
      case kTagXcrs: {
        auto x = TRY(exact<kvm_xcrs>(r, "vCPU XCRs"));
        if (x.nr_xcrs > KVM_MAX_XCRS)
          return fail(EINVAL, "vCPU XCRs: " + std::to_string(x.nr_xcrs) + " XCRs (at most 16)");
        s.xcrs = x;
        break;
      }
      case kTagMsrs:
        s.msrs = TRY(list<kvm_msr_entry>(r, kMaxMsrs, "vCPU MSRs"));
        break;
      case kTagLapic:
        s.lapic = TRY(exact<kvm_lapic_state>(r, "vCPU local APIC"));
        break;
      case kTagEvents:
        s.events = TRY(exact<kvm_vcpu_events>(r, "vCPU events"));
        break;
      case kTagDebugregs:
        s.debugregs = TRY(exact<kvm_debugregs>(r, "vCPU debug registers"));
        break;
      case kTagMpState:
        s.mp_state = TRY(exact<kvm_mp_state>(r, "vCPU MP state"));
        break;
      case kTagTscKhz:
        s.tsc_khz = TRY(exact<uint32_t>(r, "vCPU TSC frequency"));
        break;
    }
  }
  const uint32_t required = 1u << kTagCpuid | 1u << kTagRegs | 1u << kTagSregs | 1u << kTagMsrs | 1u << kTagLapic |
                            1u << kTagEvents | 1u << kTagDebugregs | 1u << kTagMpState;
  if ((have & required) != required) return fail(EINVAL, "vCPU section lacks a required record");
  if (!s.fpu && s.xsave.empty()) return fail(EINVAL, "vCPU section has neither FPU nor XSAVE state");
  if (s.cpuid.empty()) return fail(EINVAL, "vCPU section has an empty CPUID table");
  for (size_t i = 1; i < s.msrs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (s.msrs[i].index == s.msrs[j].index)
        return fail(EINVAL, "vCPU MSRs: MSR " + std::to_string(s.msrs[i].index) + " twice");
  if (s.mp_state.mp_state > KVM_MP_STATE_AP_RESET_HOLD)
    return fail(EINVAL, "vCPU MP state " + std::to_string(s.mp_state.mp_state) + " is unknown");
  if (s.tsc_khz > 100'000'000)
    return fail(EINVAL, "vCPU TSC frequency " + std::to_string(s.tsc_khz) + " kHz is implausible");
  return s;
}

std::vector<std::byte> encode_vm_kvm(const VmKvmState& s) {
  ByteSink out;
  record(out, kTagPicMaster, s.pic_master);
  record(out, kTagPicSlave, s.pic_slave);
  record(out, kTagIoapic, s.ioapic);
  record(out, kTagPit, s.pit);
  record(out, kTagClock, s.clock);
  return out.take();
}

Result<VmKvmState> decode_vm_kvm(std::span<const std::byte> payload) {
  auto records = TRY(split(payload, kVmTagCount, "VM section"));
  if (records.size() != kVmTagCount - 1) return fail(EINVAL, "VM section lacks a required record");
  VmKvmState s;
  for (const auto& r : records) {
    switch (r.tag) {
      case kTagPicMaster:
        s.pic_master = TRY(exact<kvm_irqchip>(r, "PIC master"));
        break;
      case kTagPicSlave:
        s.pic_slave = TRY(exact<kvm_irqchip>(r, "PIC slave"));
        break;
      case kTagIoapic:
        s.ioapic = TRY(exact<kvm_irqchip>(r, "IOAPIC"));
        break;
      case kTagPit:
        s.pit = TRY(exact<kvm_pit_state2>(r, "PIT"));
        break;
      case kTagClock:
        s.clock = TRY(exact<kvm_clock_data>(r, "kvmclock"));
        break;
    }
  }
  if (s.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || s.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
      s.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
    return fail(EINVAL, "VM section: interrupt controller records name the wrong chips");
  return s;
}

}  // namespace microvm::snapshot
