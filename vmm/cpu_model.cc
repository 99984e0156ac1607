#include "vmm/cpu_model.h"

#include <algorithm>

namespace microvm {
namespace {

uint32_t& reg_of(kvm_cpuid_entry2& e, CpuidReg r) {
  switch (r) {
    case CpuidReg::kEax:
      return e.eax;
    case CpuidReg::kEbx:
      return e.ebx;
    case CpuidReg::kEcx:
      return e.ecx;
    case CpuidReg::kEdx:
      return e.edx;
  }
  return e.eax;
}

}  // namespace

bool feature_bit_set(const kvm_cpuid_entry2& entry, const CpuFeature& f) {
  kvm_cpuid_entry2 copy = entry;
  return (reg_of(copy, f.reg) >> f.bit) & 1u;
}

Result<CpuModel> CpuModel::parse(std::string_view spec) {
  CpuModel model;
  size_t comma = spec.find(',');
  std::string_view base = spec.substr(0, comma);
  if (base != "host") return fail("--cpu: unknown CPU model '" + std::string(base) + "' (supported: host)");
  while (comma != std::string_view::npos) {
    spec.remove_prefix(comma + 1);
    comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    if (item.size() < 2 || (item[0] != '+' && item[0] != '-'))
      return fail("--cpu: '" + std::string(item) + "' should be +feature or -feature");
    auto bits = find_cpu_features(item.substr(1));
    if (bits.empty())
      return fail("--cpu: unknown CPU feature '" + std::string(item.substr(1)) + "' (use the names in /proc/cpuinfo)");
    auto& list = item[0] == '+' ? model.enable : model.disable;
    list.insert(list.end(), bits.begin(), bits.end());
  }
  return model;
}

CpuidEntries build_cpuid(const CpuidEntries& supported, const CpuModel& model, unsigned index, unsigned count) {
  CpuidEntries c = supported;
  const uint32_t apic_id = index;
  for (auto& e : c.entries) {
    switch (e.function) {
      case 1:
        // APIC ID, logical processor count, HTT; and tell the guest it runs under a hypervisor.
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) | ((count & 0xff) << 16);
        if (count > 1)
          e.edx |= 1u << 28;
        else
          e.edx &= ~(1u << 28);
        e.ecx |= 1u << 31;
        break;
      case 0xb:
      case 0x1f:
        // Extended topology: one thread per core, all cores in one package.
        e.edx = apic_id;
        if (e.index == 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1u << 8) | 0;  // level type SMT
        } else if (e.index == 1) {
          e.eax = 32 - __builtin_clz(count > 1 ? count - 1 : 1);
          e.ebx = count;
          e.ecx = (2u << 8) | 1;  // level type core
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      case 4:
        // Cache topology: cores per package - 1 in EAX[31:26], threads sharing in EAX[25:14].
        // The field is 6 bits wide: saturate rather than let a large count wrap.
        e.eax = (e.eax & 0x3fff) | (std::min(count - 1, 63u) << 26);
        break;
      default:
        break;
    }
  }
  auto apply = [&](const CpuFeature& f, bool on) {
    if (auto* e = c.find(f.leaf, f.subleaf)) {
      uint32_t& r = reg_of(*e, f.reg);
      r = on ? (r | (1u << f.bit)) : (r & ~(1u << f.bit));
    }
  };
  for (const auto& f : model.enable) apply(f, true);
  for (const auto& f : model.disable) apply(f, false);
  return c;
}

Result<void> check_model_supported(const CpuModel& model, const CpuidEntries& supported) {
  for (const auto& f : model.enable) {
    const auto* e = supported.find(f.leaf, f.subleaf);
    if (!e) return fail("--cpu: +" + std::string(f.name) + " is not supported by KVM on this host");
    // Nested virtualisation cannot be faked by a CPUID bit: the guest would fault on its first
    // VMXON/VMRUN. Pass it through only when KVM offers it.
    bool nested = f.name == std::string_view("vmx") || f.name == std::string_view("svm");
    if (nested && !feature_bit_set(*e, f))
      return fail(EINVAL, "--cpu: +" + std::string(f.name) +
                              ": this host's KVM does not offer nested virtualisation (" +
                              (f.name == std::string_view("vmx") ? "Intel VT-x: kvm_intel nested=1; on AMD use +svm"
                                                                 : "AMD-V: kvm_amd nested=1; on Intel use +vmx") +
                              ")");
  }
  return {};
}

}  // namespace microvm
