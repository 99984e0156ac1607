#pragma once
// Puts a vCPU into the state the Linux 64-bit boot protocol expects.
#include "base/result.h"
#include "boot/page_tables.h"
#include "memory/guest_address.h"
#include "vmm/kvm.h"

namespace microvm {

// MSRs, FPU and local APIC for every vCPU (the APs then wait for INIT/SIPI).
[[nodiscard]] Result<void> setup_vcpu_common(const VcpuFd& vcpu);
// Long mode, paging, flat segments, RIP = entry, RSI = zero page: the boot vCPU only.
[[nodiscard]] Result<void> setup_boot_vcpu(const VcpuFd& vcpu, const LongModeTables& tables, GuestAddress entry,
                                           GuestAddress zero_page);

}  // namespace microvm
