/* idle: prints one line and then halts forever (interrupts off), so a test has a guest
 * that keeps running until the host stops it: API tests check requests against a
 * started microVM without racing its power-off. */
#include "fw.h"

void fw_main(u64 boot_params) {
  (void)boot_params;
  fw_puts("IDLE running\n");
  for (;;) __asm__ volatile("cli; hlt");
}
