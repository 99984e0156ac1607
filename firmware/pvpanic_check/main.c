/* pvpanic_check: QEMU's pvpanic device at port 0x505, as Linux's driver uses it. Reads the
 * supported events, reports CRASH_LOADED (the VM must keep running), then PANICKED (the VM
 * must end, exit code 7). Without the device (no --pvpanic) the writes are ignored and the
 * program says so and powers off. With "pvpanic.event=none" it only reads the port. Prints
 * "PVPANIC ..." lines. */
#include "fw.h"
#include "microvm/guest_abi.h"

static int cmdline_has(u64 bp, const char* word) {
  u64 cmd = ld32(bp + 0x228); /* boot_params.hdr.cmd_line_ptr */
  usize n = fw_strlen(word);
  for (u64 p = cmd; p && ld8(p); p++) {
    if (fw_memcmp((const void*)(usize)p, word, n) == 0) return 1;
  }
  return 0;
}

void fw_main(u64 bp) {
  u8 supported = inb(MICROVM_PORT_PVPANIC);
  fw_puts("PVPANIC supported=");
  fw_put_hex(supported);
  fw_putc('\n');
  if (cmdline_has(bp, "pvpanic.event=none")) {
    fw_puts("PVPANIC done\n");
    return;
  }
  outb(MICROVM_PORT_PVPANIC, MICROVM_PVPANIC_CRASH_LOADED);
  fw_puts("PVPANIC crash_loaded sent, still running\n");
  outb(MICROVM_PORT_PVPANIC, MICROVM_PVPANIC_PANICKED);
  fw_puts("PVPANIC panicked ignored\n");
}
