/* bzimage_check: boot_check packaged as a bzImage (see make_bzimage.py). Besides the
 * common checks, it verifies that the VMM copied our setup header into the zero page,
 * filled in the loader fields, and loaded the payload where the header allows. */
#include "boot_params.h"
#include "checks.h"
#include "setup_values.h"

extern char __image_start[], __image_end[];

static void check_header(u64 bp, u64 load) {
  u32 magic = ld32(bp + HDR_HEADER);
  u16 version = ld16(bp + HDR_VERSION);
  u8 sects = ld8(bp + HDR_SETUP_SECTS);
  u8 loader = ld8(bp + HDR_TYPE_OF_LOADER);
  u8 loadflags = ld8(bp + HDR_LOADFLAGS);
  u16 boot_flag = ld16(bp + HDR_BOOT_FLAG);
  u32 align = ld32(bp + HDR_KERNEL_ALIGNMENT);
  bootcheck_line("bzimage load_addr=");
  fw_put_hex(load);
  fw_puts(" version=");
  fw_put_hex(version);
  fw_puts(" setup_sects=");
  fw_put_dec(sects);
  fw_puts(" type_of_loader=");
  fw_put_hex(loader);
  fw_puts(" loadflags=");
  fw_put_hex(loadflags);
  fw_putc('\n');
  if (magic != HDR_MAGIC) bootcheck_fail_hex("zero page header is not HdrS:", magic);
  if (boot_flag != 0xaa55) bootcheck_fail_hex("zero page boot_flag is not 0xaa55:", boot_flag);
  if (version != SETUP_VERSION) bootcheck_fail_hex("setup header version not copied:", version);
  if (sects != SETUP_SECTS) bootcheck_fail_hex("setup_sects not copied:", sects);
  if (ld32(bp + HDR_INIT_SIZE) != PAYLOAD_INIT_SIZE) bootcheck_fail("init_size not copied");
  if (ld16(bp + HDR_XLOADFLAGS) != (XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G))
    bootcheck_fail("xloadflags not copied");
  if (loader == 0) bootcheck_fail("type_of_loader not set by the loader");
  if (!(loadflags & LOADFLAG_LOADED_HIGH)) bootcheck_fail("loadflags lost LOADED_HIGH");
  /* Boot protocol: a relocatable kernel goes at a kernel_alignment-aligned address. */
  if (align != KERNEL_ALIGNMENT) bootcheck_fail_hex("kernel_alignment not copied:", align);
  if (load & (KERNEL_ALIGNMENT - 1)) bootcheck_fail_hex("payload not aligned to kernel_alignment:", load);
  if (load < 0x100000) bootcheck_fail_hex("payload below 1 MiB:", load);
  /* The 64-bit protocol identity-maps [load, load + init_size). */
  if (!bootcheck_identity_mapped(load, load + PAYLOAD_INIT_SIZE)) bootcheck_fail("init_size range not identity-mapped");
}

void fw_main(u64 boot_params) {
  u64 load = (u64)(usize)__image_start;
  bootcheck_line("variant=bzimage\n");
  if (boot_params && boot_params < 0x100000000ull) check_header(boot_params, load);
  bootcheck_run(boot_params, load, (u64)(usize)__image_end);
  bootcheck_line("done failures=");
  fw_put_dec(bootcheck_failures());
  fw_putc('\n');
}
