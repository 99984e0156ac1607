#include "boot/acpi/acpi_tables.h"

#include <cstring>
#include <string_view>
#include <vector>

#include "boot/acpi/aml.h"
#include "microvm/guest_abi.h"

namespace microvm {
namespace {

using aml::Bytes;

constexpr uint64_t kAcpiEnd = 0xf0000;  // the MP configuration table follows

void put(Bytes& b, size_t off, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
}

void put_str(Bytes& b, size_t off, std::string_view s) { std::memcpy(&b[off], s.data(), s.size()); }

uint8_t checksum(const Bytes& b, size_t off, size_t len) {
  uint8_t sum = 0;
  for (size_t i = off; i < off + len; ++i) sum += b[i];
  return static_cast<uint8_t>(-sum);
}

// The 36-byte System Description Table header (ACPI 6.4 §5.2.6); the checksum is set by finish().
Bytes table(std::string_view sig, uint8_t revision, size_t length) {
  Bytes b(length, 0);
  put_str(b, 0, sig);
  put(b, 4, length, 4);
  b[8] = revision;
  put_str(b, 10, "MICRVM");
  put_str(b, 16, "MICROVM ");
  put(b, 24, 1, 4);  // OEM revision
  put_str(b, 28, "MVMM");
  put(b, 32, 1, 4);  // creator revision
  return b;
}

void finish(Bytes& b) {
  b[9] = 0;
  b[9] = checksum(b, 0, b.size());
}

// Generic Address Structure: one byte-wide I/O port.
void put_gas_io(Bytes& b, size_t off, uint16_t port, uint8_t bytes = 1) {
  b[off] = 1;                                    // system I/O space
  b[off + 1] = static_cast<uint8_t>(8 * bytes);  // register bit width
  b[off + 2] = 0;
  b[off + 3] = bytes == 4 ? 3 : bytes;  // access size: 1 byte, 2 word, 3 dword
  put(b, off + 4, port, 8);
}

Bytes make_dsdt(const AcpiSpec& spec) {
  Bytes body = aml::name(
      "_S5_", aml::package({aml::integer(MICROVM_ACPI_S5_SLP_TYP), aml::integer(0), aml::integer(0), aml::integer(0)}));
  if (spec.pci) {
    uint32_t lo = spec.pci->mmio_base, hi = spec.pci->mmio_base + spec.pci->mmio_size - 1;
    Bytes crs = aml::concat({aml::res::bus_number_range(0, 0), aml::res::io_port(MICROVM_PORT_PCI_CONFIG, 8),
                             aml::res::memory32_range(lo, hi), aml::res::end_tag()});
    Bytes pci = aml::device("PCI0", {aml::name("_HID", aml::eisa_id("PNP0A03")), aml::name("_SEG", aml::integer(0)),
                                     aml::name("_UID", aml::integer(0)), aml::name("_BBN", aml::integer(0)),
                                     aml::name("_CRS", aml::buffer(crs))});
    body = aml::concat({body, aml::scope("\\_SB_", {pci})});
  }
  if (spec.pvpanic) {
    // As QEMU describes it, so Linux's pvpanic driver binds by _HID and finds the port in _CRS.
    Bytes crs = aml::concat({aml::res::io_port(MICROVM_PORT_PVPANIC, 1), aml::res::end_tag()});
    Bytes dev = aml::device("PEVT", {aml::name("_HID", aml::string("QEMU0001")), aml::name("_CRS", aml::buffer(crs))});
    body = aml::concat({body, aml::scope("\\_SB_", {dev})});
  }
  Bytes t = table("DSDT", 2, 36 + body.size());
  std::memcpy(&t[36], body.data(), body.size());
  finish(t);
  return t;
}

Bytes make_fadt(uint64_t dsdt_addr) {
  // Fixed-hardware ACPI rather than hardware-reduced: reduced mode makes Linux drop the
  // legacy PIC model, and with it the ISA IRQ mapping the 16550 at IRQ 4 relies on.
  // SMI_CMD = 0 tells the OS the machine is always in ACPI mode.
  Bytes t = table("FACP", 6, 276);
  put(t, 40, dsdt_addr, 4);
  put(t, 46, MICROVM_ACPI_SCI_IRQ, 2);  // SCI_INT: raised by the power button
  put(t, 56, MICROVM_PORT_ACPI_PM1A_EVT, 4);
  put(t, 64, MICROVM_PORT_ACPI_PM1A_CNT, 4);
  t[88] = 4;                              // PM1_EVT_LEN
  t[89] = 2;                              // PM1_CNT_LEN
  put(t, 109, (1u << 2) | (1u << 5), 2);  // IAPC_BOOT_ARCH: no VGA, no CMOS RTC, no 8042
  uint32_t flags = (1u << 0)              // WBINVD works
                   | (1u << 10)           // RESET_REG_SUP
                   | (1u << 5);           // PWR_BUTTON (bit 4) clear: a fixed-feature power button
                                          // (PM1 PWRBTN_STS/EN); SLP_BUTTON set: no sleep button
  put(t, 112, flags, 4);
  put_gas_io(t, 116, MICROVM_PORT_ACPI_RESET);
  t[128] = MICROVM_ACPI_RESET_VALUE;
  t[131] = 4;                 // FADT minor version (6.4)
  put(t, 140, dsdt_addr, 8);  // X_DSDT
  put_gas_io(t, 148, MICROVM_PORT_ACPI_PM1A_EVT, 4);
  put_gas_io(t, 172, MICROVM_PORT_ACPI_PM1A_CNT, 2);
  put_gas_io(t, 244, MICROVM_PORT_ACPI_SLEEP_CONTROL);
  put_gas_io(t, 256, MICROVM_PORT_ACPI_SLEEP_STATUS);
  put_str(t, 268, "MICROVM\0");  // hypervisor vendor identity
  finish(t);
  return t;
}

Bytes make_madt(uint32_t cpus) {
  Bytes t = table("APIC", 5, 44 + 8 * cpus + 12);
  put(t, 36, MICROVM_LAPIC_ADDR, 4);
  put(t, 40, 1, 4);  // PCAT_COMPAT: the in-kernel irqchip has the dual 8259
  size_t off = 44;
  for (uint32_t i = 0; i < cpus; ++i, off += 8) {
    t[off] = 0;  // Processor Local APIC
    t[off + 1] = 8;
    t[off + 2] = static_cast<uint8_t>(i);  // ACPI processor UID
    t[off + 3] = static_cast<uint8_t>(i);  // APIC ID (matches CPUID topology)
    put(t, off + 4, 1, 4);                 // enabled
  }
  t[off] = 1;  // I/O APIC
  t[off + 1] = 12;
  t[off + 2] = static_cast<uint8_t>(cpus);  // IOAPIC ID after the CPUs' APIC IDs
  put(t, off + 4, MICROVM_IOAPIC_ADDR, 4);
  put(t, off + 8, 0, 4);  // GSI base
  finish(t);
  return t;
}

}  // namespace

Result<GuestAddress> write_acpi_tables(const GuestMemory& mem, const AcpiSpec& spec) {
  if (spec.num_cpus == 0 || spec.num_cpus > 254) return fail("ACPI: CPU count must be 1..254");
  uint64_t cursor = MICROVM_ACPI_ADDR + 64;  // RSDP first
  auto place = [&](const Bytes& t) -> Result<uint64_t> {
    uint64_t at = cursor;
    if (at + t.size() > kAcpiEnd) return fail("ACPI tables do not fit in 0xe0000-0xeffff");
    TRY(mem.write(GuestAddress(at), std::as_bytes(std::span(t))));
    cursor = (at + t.size() + 15) & ~uint64_t{15};
    return at;
  };
  uint64_t dsdt = TRY(place(make_dsdt(spec)));
  uint64_t fadt = TRY(place(make_fadt(dsdt)));
  uint64_t madt = TRY(place(make_madt(spec.num_cpus)));
  Bytes xsdt = table("XSDT", 1, 36 + 16);
  put(xsdt, 36, fadt, 8);
  put(xsdt, 44, madt, 8);
  finish(xsdt);
  uint64_t xsdt_addr = TRY(place(xsdt));

  Bytes rsdp(36, 0);
  put_str(rsdp, 0, "RSD PTR ");
  put_str(rsdp, 9, "MICRVM");
  rsdp[15] = 2;  // ACPI 2.0+ RSDP
  put(rsdp, 20, 36, 4);
  put(rsdp, 24, xsdt_addr, 8);
  rsdp[8] = checksum(rsdp, 0, 20);
  rsdp[32] = checksum(rsdp, 0, 36);
  TRY(mem.write(GuestAddress(MICROVM_ACPI_ADDR), std::as_bytes(std::span(rsdp))));
  return GuestAddress(MICROVM_ACPI_ADDR);
}

}  // namespace microvm
