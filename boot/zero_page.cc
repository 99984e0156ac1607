#include "boot/zero_page.h"

#include <asm/bootparam.h>

#include <cstring>

#include "microvm/guest_abi.h"

namespace microvm {
namespace {

constexpr uint64_t kSetupDataAddr = MICROVM_ZERO_PAGE_ADDR + 0x1000;
constexpr uint64_t kPage = 4096;

}  // namespace

Result<GuestAddress> place_initrd(const GuestMemory& mem, const LoadedKernel& kernel, uint64_t size) {
  const GuestRegion& low = mem.regions().front();
  uint64_t top = std::min<uint64_t>(low.end().raw(),
                                    kernel.initrd_addr_max == UINT64_MAX ? UINT64_MAX : kernel.initrd_addr_max + 1);
  uint64_t bottom = (kernel.image_end.raw() + kPage - 1) & ~(kPage - 1);
  if (size > top || ((top - size) & ~(kPage - 1)) < bottom)
    return fail("initrd of " + std::to_string(size >> 10) + " KiB does not fit in guest RAM above the kernel (" +
                std::to_string(top > bottom ? (top - bottom) >> 10 : 0) + " KiB free); raise --memory");
  return GuestAddress((top - size) & ~(kPage - 1));
}

Result<GuestAddress> write_boot_params(const GuestMemory& mem, const BootParamsSpec& spec) {
  const LoadedKernel& k = *spec.kernel;
  boot_params bp;
  std::memset(&bp, 0, sizeof bp);
  if (k.header) {
    bp.hdr = *k.header;
  } else {
    // An ELF kernel has no setup header; fill in what the 64-bit entry reads.
    bp.hdr.boot_flag = 0xaa55;
    bp.hdr.header = 0x53726448;
    bp.hdr.version = 0x020f;
    bp.hdr.kernel_alignment = 0x1000000;
  }
  bp.hdr.type_of_loader = 0xff;  // "undefined" loader: we have no assigned id
  bp.hdr.loadflags |= CAN_USE_HEAP;
  bp.hdr.heap_end_ptr = 0xfe00;

  if (spec.cmdline.size() > k.cmdline_limit)
    return fail("kernel command line is " + std::to_string(spec.cmdline.size()) +
                " bytes; this kernel accepts at most " + std::to_string(k.cmdline_limit));
  if (spec.cmdline.size() + 1 > MICROVM_CMDLINE_MAX) return fail("kernel command line is too long");
  TRY(mem.write(GuestAddress(MICROVM_CMDLINE_ADDR),
                std::as_bytes(std::span(spec.cmdline.c_str(), spec.cmdline.size() + 1))));
  bp.hdr.cmd_line_ptr = static_cast<uint32_t>(MICROVM_CMDLINE_ADDR);
  bp.ext_cmd_line_ptr = 0;
  bp.hdr.cmdline_size = k.cmdline_limit;

  if (spec.initrd_size) {
    bp.hdr.ramdisk_image = static_cast<uint32_t>(spec.initrd_addr.raw());
    bp.ext_ramdisk_image = static_cast<uint32_t>(spec.initrd_addr.raw() >> 32);
    bp.hdr.ramdisk_size = static_cast<uint32_t>(spec.initrd_size);
    bp.ext_ramdisk_size = static_cast<uint32_t>(spec.initrd_size >> 32);
  }

  auto e820 = e820_map(mem.regions());
  if (e820.size() > E820_MAX_ENTRIES_ZEROPAGE) return fail("too many e820 entries");
  for (size_t i = 0; i < e820.size(); ++i) {
    bp.e820_table[i].addr = e820[i].addr;
    bp.e820_table[i].size = e820[i].size;
    bp.e820_table[i].type = static_cast<uint32_t>(e820[i].type);
  }
  bp.e820_entries = static_cast<uint8_t>(e820.size());
  bp.acpi_rsdp_addr = spec.acpi_rsdp.raw();

  if (!spec.rng_seed.empty()) {
    setup_data sd{};
    sd.next = 0;
    sd.type = SETUP_RNG_SEED;
    sd.len = static_cast<uint32_t>(spec.rng_seed.size());
    TRY(mem.write_obj(GuestAddress(kSetupDataAddr), sd));
    TRY(mem.write(GuestAddress(kSetupDataAddr + sizeof sd), spec.rng_seed));
    bp.hdr.setup_data = kSetupDataAddr;
  }

  TRY(mem.write_obj(GuestAddress(MICROVM_ZERO_PAGE_ADDR), bp));
  return GuestAddress(MICROVM_ZERO_PAGE_ADDR);
}

}  // namespace microvm
