/* snap_calc: a long, deterministic computation for snapshot/restore tests. Eight 64-bit
 * values are mixed in general registers for ITERATIONS rounds with interrupts disabled,
 * printing "SNAPCALC progress <i>" every PROGRESS_EVERY rounds, so a host test can take a
 * snapshot mid-computation. A one-shot local APIC timer started before the loop fires
 * almost at once and stays pending (IF=0) through the whole computation: after it the
 * firmware checks that the vector is still pending in the APIC's IRR and takes it. Prints
 * "SNAPCALC done sum=<hex> pending=<0|1> vector=<hex>": the same line whether or not the
 * run was snapshotted and restored in between. */
#include "fw.h"
#include "microvm/guest_abi.h"

#define VEC_TIMER 0x45
#define ITERATIONS 60000u
#define PROGRESS_EVERY 5000u

extern char irq_stubs[];
u64 irq_wait(void);

struct idt_entry {
  u16 off0, sel;
  u8 ist, type;
  u16 off1;
  u32 off2, zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));

static void lapic_write(u32 reg, u32 v) { *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg) = v; }
static u32 lapic_read(u32 reg) { return *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg); }

static void setup_idt(void) {
  for (u32 v = 0; v < 256; v++) {
    u64 h = (u64)(usize)irq_stubs + 16 * v;
    idt[v] = (struct idt_entry){(u16)h, 0x10, 0, 0x8e, (u16)(h >> 16), (u32)(h >> 32), 0};
  }
  struct __attribute__((packed)) {
    u16 limit;
    u64 base;
  } idtr = {sizeof idt - 1, (u64)(usize)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
  outb(0x21, 0xff); /* 8259s masked */
  outb(0xa1, 0xff);
  lapic_write(0x80, 0);     /* TPR: accept every priority */
  lapic_write(0xf0, 0x1ff); /* SVR: software-enable, spurious vector 0xff */
}

static inline u64 rotl(u64 v, u32 n) { return (v << n) | (v >> (64 - n)); }

void fw_main(u64 boot_params) {
  (void)boot_params;
  setup_idt();
  fw_puts("SNAPCALC start\n");
  lapic_write(0x3e0, 0xb);       /* divide by 1 */
  lapic_write(0x320, VEC_TIMER); /* one-shot */
  lapic_write(0x380, 1000);      /* fires at once; stays pending while IF=0 */

  u64 a = 0x243f6a8885a308d3ull, b = 0x13198a2e03707344ull, c = 0xa4093822299f31d0ull, d = 0x082efa98ec4e6c89ull;
  u64 e = 0x452821e638d01377ull, f = 0xbe5466cf34e90c6cull, g = 0xc0ac29b7c97c50ddull, h = 0x3f84d5b5b5470917ull;
  for (u32 i = 1; i <= ITERATIONS; i++) {
    a += b ^ i;
    b = rotl(b ^ c, 13) + d;
    c = c * 0x9e3779b97f4a7c15ull + e;
    d ^= rotl(a, 29) + f;
    e = (e + g) ^ (h >> 7);
    f = rotl(f + a, 41) ^ c;
    g ^= (d << 3) + i;
    h = h * 0xbf58476d1ce4e5b9ull + b;
    if (i % PROGRESS_EVERY == 0) {
      fw_puts("SNAPCALC progress ");
      fw_put_dec(i);
      fw_putc('\n');
    }
  }
  u64 sum = a ^ rotl(b, 8) ^ rotl(c, 16) ^ rotl(d, 24) ^ rotl(e, 32) ^ rotl(f, 40) ^ rotl(g, 48) ^ rotl(h, 56);
  u32 irr = lapic_read(0x200 + (VEC_TIMER / 32) * 0x10);
  int pending = (irr >> (VEC_TIMER % 32)) & 1;
  u64 vector = irq_wait();
  fw_puts("SNAPCALC done sum=");
  fw_put_hex(sum);
  fw_puts(" pending=");
  fw_put_dec((u64)pending);
  fw_puts(" vector=");
  fw_put_hex(vector);
  fw_putc('\n');
}
