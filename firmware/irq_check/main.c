/* irq_check: end-to-end interrupt delivery from a virtio device, the way a guest OS
 * sees it. On virtio-mmio the device's line (from "virtio_mmio.device=...:<irq>") is
 * routed through the IOAPIC to vector 0x41; on virtio-pci the queue is bound to MSI-X
 * entry 0 carrying vector 0x42 to the BSP. Two entropy requests must each raise the
 * interrupt; a local APIC timer is the watchdog (vector 0x4f). Prints "IRQCHECK ...". */
#include "fw.h"
#include "microvm/guest_abi.h"
#include "virtio_driver.h"

#define VEC_IOAPIC 0x41
#define VEC_MSIX 0x42
#define VEC_WATCHDOG 0x4f

const char vio_prefix[] = "IRQCHECK ";

extern char irq_stubs[];
u64 irq_wait(void);

struct idt_entry {
  u16 off0, sel;
  u8 ist, type;
  u16 off1;
  u32 off2, zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));
static u8 buf[64] __attribute__((aligned(64)));

static void lapic_write(u32 reg, u32 v) { *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg) = v; }
static void ioapic_write(u32 reg, u32 v) {
  *(volatile u32*)(usize)MICROVM_IOAPIC_ADDR = reg;
  *(volatile u32*)(usize)(MICROVM_IOAPIC_ADDR + 0x10) = v;
}

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
  /* Mask the 8259s, as an OS does first: at reset they are unmasked with vector base 0,
   * so an ISA line routed to both chips would also arrive as "exception" 0-15. */
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
  lapic_write(0x80, 0);     /* TPR: accept every priority */
  lapic_write(0xf0, 0x1ff); /* SVR: software-enable, spurious vector 0xff */
}

static void watchdog(int on) {
  lapic_write(0x3e0, 0xb);          /* divide by 1 */
  lapic_write(0x320, VEC_WATCHDOG); /* one-shot */
  lapic_write(0x380, on ? 500000000u : 0);
}

static u16 msix_readback = 0xffff;
static void bind_msix(u16 q) { msix_readback = vt_pci_set_queue_vector(q, 0); }

/* One entropy request; then the interrupt must arrive (it is pending while IF=0). */
static void round_trip(const char* what, u32 want) {
  vq_descs[0] = (struct vq_desc){(u64)(usize)buf, sizeof buf, DESC_WRITE, 0};
  u32 used_len = 0;
  int needs_reset = 0;
  if (!vio_submit(0, &used_len, &needs_reset)) {
    vb_fail("entropy request not completed");
    return;
  }
  watchdog(1);
  u64 v = irq_wait();
  watchdog(0);
  u32 isr = vio.isr_read_ack(); /* a driver's handler reads (and, on mmio, acks) the status */
  vio_line(what);
  fw_puts(" vector=");
  fw_put_hex(v);
  fw_puts(" isr=");
  fw_put_hex(isr);
  fw_putc('\n');
  if (v == VEC_WATCHDOG)
    vb_fail("no interrupt within 500 ms");
  else if (v < 32)
    vb_fail_hex("exception instead of an interrupt:", v);
  else if (v != want)
    vb_fail_hex("interrupt on an unexpected vector:", v);
}

static void run(u64 bp) {
  setup_idt();
  if (!vio_find(bp, 4, "irq")) {
    vb_fail("no virtio-rng device");
    return;
  }
  u32 want;
  if (vio.name[0] == 'm') {
    u32 gsi = vt_mmio_irq;
    vio_line("route ioapic gsi=");
    fw_put_dec(gsi);
    fw_putc('\n');
    if (gsi == 0 || gsi >= 24) {
      vb_fail_hex("virtio-mmio interrupt line not usable:", gsi);
      return;
    }
    ioapic_write(0x11 + 2 * gsi, 0);          /* destination: APIC ID 0 (the BSP) */
    ioapic_write(0x10 + 2 * gsi, VEC_IOAPIC); /* fixed, physical, active high, edge, unmasked */
    want = VEC_IOAPIC;
  } else {
    if (!vt_pci_msix_enable(MICROVM_LAPIC_ADDR, VEC_MSIX)) {
      vb_fail("virtio-pci device without MSI-X");
      return;
    }
    vio_queue_hook = bind_msix;
    want = VEC_MSIX;
  }
  if (!vio_init(0)) return;
  if (vio.name[0] == 'p') {
    vio_line("route msix queue_vector_readback=");
    fw_put_hex(msix_readback);
    fw_putc('\n');
    if (msix_readback != 0) vb_fail_hex("device refused MSI-X vector 0 for queue 0:", msix_readback);
  }
  vio.isr_read_ack();
  round_trip("interrupt 1", want);
  round_trip("interrupt 2", want);
  vio.set_status(0);
}

void fw_main(u64 bp) {
  vio_line("start\n");
  run(bp);
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
}
