/* boot_check: an ELF64 "kernel" that verifies what the VMM handed it through the
 * 64-bit boot protocol, prints BOOTCHECK lines on COM1, and powers off.
 *
 * Command-line options (for tests of the VMM's exit paths):
 *   bootcheck.exit=poweroff|i8042|acpi-reset|cf9|triple-fault|halt
 *     how to end after "BOOTCHECK done": power off (default), reset through the i8042,
 *     the FADT reset register or port 0xcf9, a triple fault, or halt forever with
 *     interrupts off (for Ctrl-A x / signal tests).
 *   bootcheck.poweroff=pm1a   power off through PM1a_CNT instead of the sleep register.
 *   bootcheck.flood=<KiB>     before "done", write that many KiB of "FLOOD ..." lines to
 *     the console (a test of a console reader that stops reading), then "BOOTCHECK flooded".
 * It also writes boot marker 1 (port 0x402) first thing, for --boot-timer. */
#include "boot_params.h"
#include "checks.h"
#include "microvm/guest_abi.h"

extern char __image_start[], __image_end[];

/* 1 if "bootcheck.exit=<mode>" is on the command line. */
static int exit_mode(u64 bp, const char* mode) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return 0;
  static const char key[] = "bootcheck.exit=";
  const char* c = (const char*)(usize)p;
  usize ml = fw_strlen(mode);
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, key, sizeof key - 1) == 0 && fw_memcmp(c + i + sizeof key - 1, mode, ml) == 0) {
      char end = c[i + sizeof key - 1 + ml];
      if (end == 0 || end == ' ') return 1;
    }
  }
  return 0;
}

/* The decimal value of "<key><digits>" on the command line, or 0. */
static u64 cmdline_number(u64 bp, const char* key) {
  if (!bp || bp >= 0x100000000ull) return 0;
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return 0;
  const char* c = (const char*)(usize)p;
  usize kl = fw_strlen(key);
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, key, kl) != 0) continue;
    u64 v = 0;
    for (usize j = i + kl; j < MICROVM_CMDLINE_MAX && c[j] >= '0' && c[j] <= '9' && v < 1000000; j++)
      v = v * 10 + (u64)(c[j] - '0');
    return v;
  }
  return 0;
}

/* 64-byte lines until `kib` KiB are written. */
static void flood(u64 kib) {
  static const char line[] = "FLOOD 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJK\n";
  for (u64 i = 0; i < kib * 16; i++) fw_puts(line);
  bootcheck_line("flooded\n");
}

static void end(u64 bp) {
  if (!bp || bp >= 0x100000000ull) return;
  if (exit_mode(bp, "i8042")) {
    bootcheck_line("exit=i8042\n");
    outb(MICROVM_PORT_I8042_CMD, 0xfe);
  } else if (exit_mode(bp, "acpi-reset")) {
    bootcheck_line("exit=acpi-reset\n");
    outb(MICROVM_PORT_ACPI_RESET, MICROVM_ACPI_RESET_VALUE);
  } else if (exit_mode(bp, "cf9")) {
    bootcheck_line("exit=cf9\n");
    outb(MICROVM_PORT_RESET_CF9, 0x06);
  } else if (exit_mode(bp, "triple-fault")) {
    bootcheck_line("exit=triple-fault\n");
    /* An empty IDT: the #UD cannot be delivered, nor the #GP/#DF that follow. */
    struct __attribute__((packed)) {
      u16 limit;
      u64 base;
    } idt = {0, 0};
    __asm__ volatile("lidt %0; ud2" : : "m"(idt));
  } else if (exit_mode(bp, "halt")) {
    bootcheck_line("exit=halt\n");
    for (;;) __asm__ volatile("cli; hlt");
  } else {
    return; /* power off, in the entry code */
  }
  /* Still here: the requested reset did not happen. */
  bootcheck_fail("requested exit did not stop the VM");
  for (;;) __asm__ volatile("cli; hlt");
}

void fw_main(u64 boot_params) {
  outb(MICROVM_PORT_BOOT_MARKER, 1);
  bootcheck_line("variant=elf\n");
  bootcheck_run(boot_params, (u64)(usize)__image_start, (u64)(usize)__image_end);
  flood(cmdline_number(boot_params, "bootcheck.flood="));
  bootcheck_line("done failures=");
  fw_put_dec(bootcheck_failures());
  fw_putc('\n');
  end(boot_params);
}
