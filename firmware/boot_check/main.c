/* boot_check: an ELF64 "kernel" that verifies what the VMM handed it through the
 * 64-bit boot protocol, prints BOOTCHECK lines on COM1, and powers off. */
#include "checks.h"

extern char __image_start[], __image_end[];

void fw_main(u64 boot_params) {
  bootcheck_line("variant=elf\n");
  bootcheck_run(boot_params, (u64)(usize)__image_start, (u64)(usize)__image_end);
  bootcheck_line("done failures=");
  fw_put_dec(bootcheck_failures());
  fw_putc('\n');
}
