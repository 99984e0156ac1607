// Fuzzes the snapshot state file parser: the container (header, section table, CRCs) and
// every section decoder a restore runs before touching KVM. A snapshot file is hostile
// input; nothing may crash, and whatever parses must satisfy the limits the decoders
// promise. Inputs too damaged to pass the CRCs reach only the container checks, so the
// target also re-wraps the raw input as each section type with valid CRCs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "devices/platform/serial_16550.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/machine_state.h"
#include "vmm/snapshot/snapshot_file.h"

using namespace microvm::snapshot;

namespace {

void decode_section(const Section& s) {
  switch (s.type) {
    case SectionType::kMachine:
      if (auto m = decode_machine(s.payload)) {
        if (m->config.cpus == 0 || m->config.cpus > kMaxVcpus || m->regions.empty() || m->regions.size() > kMaxRegions)
          std::abort();
      }
      break;
    case SectionType::kVcpu:
      if (auto v = decode_vcpu(s.payload)) {
        if (v->msrs.size() > kMaxMsrs || v->cpuid.size() > kMaxCpuidEntries || v->xsave.size() > kXsaveMaxBytes ||
            (v->xcrs && v->xcrs->nr_xcrs > KVM_MAX_XCRS))
          std::abort();
      }
      break;
    case SectionType::kVmKvm:
      (void)decode_vm_kvm(s.payload);
      break;
    case SectionType::kDevice:
      break;
    case SectionType::kPlatform: {
      microvm::Serial16550 uart([] {}, {});
      (void)uart.load_state(s.payload);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::as_bytes(std::span(data, size));
  if (auto file = parse_snapshot(bytes)) {
    for (const auto& s : file->sections) decode_section(s);
  }
  // The same bytes as the payload of each section type, inside a well-formed container.
  if (size <= 64 * 1024) {
    for (SectionType t : {SectionType::kMachine, SectionType::kVcpu, SectionType::kVmKvm, SectionType::kPlatform}) {
      SnapshotFile f;
      f.sections.push_back({t, 0, {bytes.begin(), bytes.end()}});
      auto parsed = parse_snapshot(encode_snapshot(f));
      if (!parsed || parsed->sections.size() != 1) std::abort();
      decode_section(parsed->sections[0]);
    }
  }
  return 0;
}
