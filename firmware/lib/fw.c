/* Runtime for freestanding firmware. See fw.h. */
#include "fw.h"

#include "microvm/guest_abi.h"

#define LSR_THRE 0x20

void fw_putc(char c) {
  /* Bounded wait: a VMM that never reports THRE must not hang the guest forever. */
  for (int i = 0; i < 100000; i++) {
    if (inb(MICROVM_PORT_COM1 + 5) & LSR_THRE) break;
  }
  outb(MICROVM_PORT_COM1, (u8)c);
}

void fw_puts(const char* s) {
  while (*s) fw_putc(*s++);
}

void fw_put_hex(u64 v) {
  char buf[19];
  int i = 18;
  buf[i] = 0;
  do {
    u8 d = v & 0xf;
    buf[--i] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v >>= 4;
  } while (v);
  buf[--i] = 'x';
  buf[--i] = '0';
  fw_puts(&buf[i]);
}

void fw_put_dec(u64 v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do {
    buf[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  fw_puts(&buf[i]);
}

void fw_put_bytes(const u8* p, usize n) {
  for (usize i = 0; i < n; i++) fw_putc(p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?');
}

static int poweroff_pm1a;

void fw_poweroff_use_pm1a(void) { poweroff_pm1a = 1; }

void fw_poweroff(void) {
  if (poweroff_pm1a)
    outw(MICROVM_PORT_ACPI_PM1A_CNT, (MICROVM_ACPI_S5_SLP_TYP << 10) | (1 << 13)); /* SLP_TYP | SLP_EN */
  else
    outb(MICROVM_PORT_ACPI_SLEEP_CONTROL, (MICROVM_ACPI_S5_SLP_TYP << 2) | 0x20);
  /* Still running: power-off is broken. Say so, then reset so the VMM exits with
   * "reboot" (3) instead of hanging until a test timeout. */
  fw_puts("FW poweroff did not stop the VM; resetting\n");
  outb(MICROVM_PORT_I8042_CMD, 0xfe);
  for (;;) __asm__ volatile("cli; hlt");
}

int fw_memcmp(const void* a, const void* b, usize n) {
  const u8* x = a;
  const u8* y = b;
  for (usize i = 0; i < n; i++) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

int memcmp(const void* a, const void* b, usize n) { return fw_memcmp(a, b, n); }

usize fw_strlen(const char* s) {
  usize n = 0;
  while (s[n]) n++;
  return n;
}

void* memcpy(void* d, const void* s, usize n) {
  u8* x = d;
  const u8* y = s;
  for (usize i = 0; i < n; i++) x[i] = y[i];
  return d;
}

void* memset(void* d, int c, usize n) {
  u8* x = d;
  for (usize i = 0; i < n; i++) x[i] = (u8)c;
  return d;
}
