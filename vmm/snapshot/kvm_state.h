#pragma once
// The KVM state of one vCPU and of the VM (in-kernel irqchip, PIT, kvmclock), and their
// section encodings. decode_*() are pure functions over untrusted section bytes: every
// record has the exact size of its KVM structure, lists are bounded, nothing is missing
// or repeated. Capturing and applying the state through KVM is in kvm_state_io.h.
#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace microvm::snapshot {

inline constexpr size_t kMaxMsrs = 2048;
inline constexpr size_t kMaxCpuidEntries = 512;
inline constexpr size_t kXsaveMinBytes = 4096;
inline constexpr size_t kXsaveMaxBytes = 1u << 20;

struct VcpuState {
  std::vector<kvm_cpuid_entry2> cpuid;  // the guest's CPUID, set before anything else
  kvm_regs regs{};
  kvm_sregs sregs{};
  std::optional<kvm_fpu> fpu;  // hosts without XSAVE
  std::vector<uint8_t> xsave;  // x87, SSE, AVX...: KVM_GET_XSAVE(2); empty without XSAVE
  std::optional<kvm_xcrs> xcrs;
  std::vector<kvm_msr_entry> msrs;
  kvm_lapic_state lapic{};
  kvm_vcpu_events events{};
  kvm_debugregs debugregs{};
  kvm_mp_state mp_state{};
  uint32_t tsc_khz = 0;  // 0: not recorded (KVM_GET_TSC_KHZ unavailable)
};

struct VmKvmState {
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
};

std::vector<std::byte> encode_vcpu(const VcpuState& s);
[[nodiscard]] Result<VcpuState> decode_vcpu(std::span<const std::byte> payload);

std::vector<std::byte> encode_vm_kvm(const VmKvmState& s);
[[nodiscard]] Result<VmKvmState> decode_vm_kvm(std::span<const std::byte> payload);

}  // namespace microvm::snapshot
