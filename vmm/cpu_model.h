#pragma once
// --cpu host[,+feature|-feature...]: what the guest's CPUID says, built from what KVM supports.
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "vmm/cpu_features.h"
#include "vmm/kvm.h"

namespace microvm {

struct CpuModel {
  std::vector<CpuFeature> enable;
  std::vector<CpuFeature> disable;

  // Parses "host", "host,-avx2,+x2apic" (names as in /proc/cpuinfo, plus kvm PV names).
  [[nodiscard]] static Result<CpuModel> parse(std::string_view spec);
};

// Whether `entry` (of KVM's supported CPUID) has feature `f`'s bit set.
bool feature_bit_set(const kvm_cpuid_entry2& entry, const CpuFeature& f);

// The CPUID table for vCPU `index` of `count`: supported leaves, feature modifiers, the
// hypervisor bit, and per-vCPU topology (APIC ID in leaves 1, 0xb and 0x1f).
CpuidEntries build_cpuid(const CpuidEntries& supported, const CpuModel& model, unsigned index, unsigned count);

// Refuses a model that enables what KVM on this host cannot give the guest.
[[nodiscard]] Result<void> check_model_supported(const CpuModel& model, const CpuidEntries& supported);

}  // namespace microvm
