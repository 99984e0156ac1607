/* pwrbtn_check: the ACPI fixed-feature power button as an OS sees it. Routes the FADT's
 * SCI (IOAPIC pin SCI_INT, level-triggered) to a vector, sets PWRBTN_EN in PM1_EN, prints
 * "PWRBTN ready" and halts until the SCI arrives (the host presses the button,
 * Vm::request_shutdown). Then PWRBTN_STS must be set; writing 1 clears it; the program
 * powers off through PM1a_CNT as Linux does. Prints "PWRBTN ..." lines. */
#include "fw.h"
#include "microvm/guest_abi.h"

#define VEC_SCI 0x49

extern char irq_stubs[];
u64 irq_wait(void);

struct idt_entry {
  u16 off0, sel;
  u8 ist, type;
  u16 off1;
  u32 off2, zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16)));
static u32 failures;

static void lapic_write(u32 reg, u32 v) { *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg) = v; }
static void ioapic_write(u32 reg, u32 v) {
  *(volatile u32*)(usize)MICROVM_IOAPIC_ADDR = reg;
  *(volatile u32*)(usize)(MICROVM_IOAPIC_ADDR + 0x10) = v;
}

static void fail(const char* what, u64 v) {
  failures++;
  fw_puts("PWRBTN FAIL ");
  fw_puts(what);
  fw_putc(' ');
  fw_put_hex(v);
  fw_putc('\n');
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
  outb(0x21, 0xff); /* mask the 8259s: the SCI goes through the IOAPIC */
  outb(0xa1, 0xff);
  lapic_write(0x80, 0);
  lapic_write(0xf0, 0x1ff);
}

void fw_main(u64 bp) {
  (void)bp;
  fw_poweroff_use_pm1a();
  setup_idt();
  u16 sts = inw(MICROVM_PORT_ACPI_PM1A_EVT);
  if (sts & MICROVM_ACPI_PM1_PWRBTN) fail("PWRBTN_STS set before any press:", sts);
  /* Level-triggered (bit 15), active high, fixed delivery to APIC ID 0. */
  ioapic_write(0x11 + 2 * MICROVM_ACPI_SCI_IRQ, 0);
  ioapic_write(0x10 + 2 * MICROVM_ACPI_SCI_IRQ, VEC_SCI | (1u << 15));
  outw(MICROVM_PORT_ACPI_PM1A_EVT + 2, MICROVM_ACPI_PM1_PWRBTN);
  u16 en = inw(MICROVM_PORT_ACPI_PM1A_EVT + 2);
  if (!(en & MICROVM_ACPI_PM1_PWRBTN)) fail("PWRBTN_EN did not stick:", en);
  fw_puts("PWRBTN ready\n");
  u64 v = irq_wait();
  sts = inw(MICROVM_PORT_ACPI_PM1A_EVT);
  fw_puts("PWRBTN sci vector=");
  fw_put_hex(v);
  fw_puts(" pm1_sts=");
  fw_put_hex(sts);
  fw_putc('\n');
  if (v != VEC_SCI) fail("unexpected vector:", v);
  if (!(sts & MICROVM_ACPI_PM1_PWRBTN)) fail("SCI without PWRBTN_STS:", sts);
  outw(MICROVM_PORT_ACPI_PM1A_EVT, MICROVM_ACPI_PM1_PWRBTN); /* write 1 to clear */
  sts = inw(MICROVM_PORT_ACPI_PM1A_EVT);
  if (sts & MICROVM_ACPI_PM1_PWRBTN) fail("PWRBTN_STS not cleared by writing 1:", sts);
  fw_puts("PWRBTN done failures=");
  fw_put_dec(failures);
  fw_putc('\n');
  /* entry.S powers off (PM1a_CNT, S5) when fw_main returns. */
}
