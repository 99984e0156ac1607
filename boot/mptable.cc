#include "boot/mptable.h"

#include <cstring>
#include <vector>

#include "microvm/guest_abi.h"

namespace microvm {
namespace {

// The configuration table lives in the reserved 0xe0000-0xfffff area, above the ACPI tables.
constexpr uint64_t kConfigTableAddr = 0xf0000;
constexpr uint64_t kConfigTableMax = 0x10000;

void put(std::vector<uint8_t>& b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint8_t checksum(const std::vector<uint8_t>& b, size_t off, size_t len) {
  uint8_t sum = 0;
  for (size_t i = off; i < off + len; ++i) sum += b[i];
  return static_cast<uint8_t>(-sum);
}

void append(std::vector<uint8_t>& b, std::initializer_list<uint8_t> bytes) { b.insert(b.end(), bytes); }

}  // namespace

Result<void> write_mp_table(const GuestMemory& mem, uint32_t num_cpus, uint8_t ioapic_id) {
  // MP spec 1.4, chapter 4. Entries: processors, one ISA bus, the IOAPIC, ISA IRQs 0-15 on
  // IOAPIC pins 0-15 (identity, as in the MADT), LINT0 ExtINT and LINT1 NMI.
  std::vector<uint8_t> t(44, 0);
  std::memcpy(t.data(), "PCMP", 4);
  t[6] = 4;  // spec revision 1.4
  std::memcpy(&t[8], "MICROVM ", 8);
  std::memcpy(&t[16], "MICROVM     ", 12);
  put(t, 36, MICROVM_LAPIC_ADDR, 4);
  uint16_t entries = 0;
  for (uint32_t i = 0; i < num_cpus; ++i, ++entries) {
    size_t at = t.size();
    t.resize(at + 20, 0);
    t[at] = 0;                                               // processor
    t[at + 1] = static_cast<uint8_t>(i);                     // local APIC id
    t[at + 2] = 0x14;                                        // local APIC version
    t[at + 3] = static_cast<uint8_t>(1 | (i == 0 ? 2 : 0));  // enabled, BSP
    put(t, at + 4, 0x600, 4);                                // CPU signature (family 6)
    put(t, at + 8, 0x201, 4);                                // feature flags: FPU, APIC
  }
  append(t, {1, 0, 'I', 'S', 'A', ' ', ' ', ' '});  // bus 0: ISA
  ++entries;
  append(t, {2, ioapic_id, 0x11, 1});  // IOAPIC, version 0x11, enabled
  for (int i = 0; i < 4; ++i) t.push_back(static_cast<uint8_t>(MICROVM_IOAPIC_ADDR >> (8 * i)));
  ++entries;
  for (uint8_t irq = 0; irq < 16; ++irq, ++entries) append(t, {3, 0 /* INT */, 0, 0, 0 /* bus */, irq, ioapic_id, irq});
  append(t, {4, 3 /* ExtINT */, 0, 0, 0, 0, 0xff, 0});  // LINT0 on every CPU
  append(t, {4, 1 /* NMI */, 0, 0, 0, 0, 0xff, 1});     // LINT1 on every CPU
  entries += 2;
  if (t.size() > kConfigTableMax) return fail("MP table too large");
  put(t, 4, t.size(), 2);
  put(t, 34, entries, 2);
  t[7] = checksum(t, 0, t.size());
  TRY(mem.write(GuestAddress(kConfigTableAddr), std::as_bytes(std::span(t))));

  std::vector<uint8_t> fp(16, 0);
  std::memcpy(fp.data(), "_MP_", 4);
  put(fp, 4, kConfigTableAddr, 4);
  fp[8] = 1;  // length in 16-byte units
  fp[9] = 4;  // spec revision 1.4
  fp[10] = checksum(fp, 0, 16);
  TRY(mem.write(GuestAddress(MICROVM_MPTABLE_ADDR), std::as_bytes(std::span(fp))));
  return {};
}

}  // namespace microvm
