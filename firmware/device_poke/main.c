/* device_poke: a deterministic, seeded storm of odd guest accesses to everything the
 * VMM emulates: UART registers (incl. DLAB and loopback), PCI configuration mechanism
 * #1 (any bus/device/function/offset, all widths), PCI config space of every device
 * on bus 0 (BARs, command, capabilities), virtio-pci structures, virtio-mmio registers
 * (every offset, every width), the boot-marker and ACPI ports, and unassigned MMIO
 * and ports. The VMM must neither crash nor stop the VM; afterwards the firmware
 * restores the UART, checks the devices still answer, and powers off (exit code 0).
 *
 * Excluded on purpose: writes that legitimately end the VM (i8042 0x64, 0xcf9,
 * ACPI sleep/reset registers), MSI-X tables (a random MSI could be an NMI/INIT), and
 * ring addresses inside our own RAM (a device then legitimately writes into our code).
 *
 * Command line: poke.seed=N (default 1), poke.rounds=N (default 3000). */
#include "boot_params.h"
#include "fw.h"
#include "microvm/guest_abi.h"

static u64 rng_state;
static u32 failures;

static u64 next(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

static void fail(const char* s, u64 v) {
  failures++;
  fw_puts("POKE FAIL ");
  fw_puts(s);
  fw_putc(' ');
  fw_put_hex(v);
  fw_putc('\n');
}

static u64 cmdline_num(u64 bp, const char* key, u64 dflt) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return dflt;
  const char* c = (const char*)(usize)p;
  usize kl = fw_strlen(key);
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, key, kl) != 0) continue;
    u64 v = 0;
    for (const char* s = c + i + kl; *s >= '0' && *s <= '9'; s++) v = v * 10 + (u64)(*s - '0');
    return v;
  }
  return dflt;
}

/* ---- raw accesses ----------------------------------------------------------------- */

static void io_write(u16 port, int width, u32 v) {
  if (width == 1)
    outb(port, (u8)v);
  else if (width == 2)
    outw(port, (u16)v);
  else
    outl(port, v);
}
static u32 io_read(u16 port, int width) {
  if (width == 1) return inb(port);
  if (width == 2) {
    u16 v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
  }
  return inl(port);
}
static void mmio_write(u64 a, int width, u64 v) {
  if (width == 1)
    *(volatile u8*)(usize)a = (u8)v;
  else if (width == 2)
    *(volatile u16*)(usize)a = (u16)v;
  else if (width == 4)
    *(volatile u32*)(usize)a = (u32)v;
  else
    *(volatile u64*)(usize)a = v;
}
static u64 mmio_read(u64 a, int width) {
  if (width == 1) return *(volatile u8*)(usize)a;
  if (width == 2) return *(volatile u16*)(usize)a;
  if (width == 4) return *(volatile u32*)(usize)a;
  return *(volatile u64*)(usize)a;
}

static int rand_width(void) { return 1 << (next() % 3); } /* 1, 2, 4 */

/* Ring addresses and other guest-physical pointers: outside RAM, or inside a scratch
 * buffer of ours, never our code or stack. */
static u8 scratch[65536] __attribute__((aligned(4096), section(".noinit")));
static u64 safe_pointer(void) {
  switch (next() % 4) {
    case 0:
      return (u64)(usize)scratch + (next() % (sizeof scratch - 64) & ~15ull);
    case 1:
      return 0xc0000000ull + (next() % 0x40000000ull);
    case 2:
      return next();
    default:
      return 0;
  }
}

/* ---- targets ---------------------------------------------------------------------- */

static u64 pci_bars[32][6]; /* memory BAR addresses of bus-0 devices at start */
static u64 msix_table[32];  /* BAR address + offset of each device's MSI-X table, 0 if none */
static u64 msix_end[32];

static u32 pci_read(u32 dev, u32 off) {
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u | (dev << 11) | (off & 0xfc));
  return inl(MICROVM_PORT_PCI_CONFIG + 4);
}

static void survey_pci(void) {
  for (u32 dev = 0; dev < 32; dev++) {
    if ((pci_read(dev, 0) & 0xffff) == 0xffff) continue;
    for (u32 b = 0; b < 6; b++) {
      u32 lo = pci_read(dev, 0x10 + b * 4);
      if (lo & 1) continue;
      u64 a = lo & ~0xfull;
      if (((lo >> 1) & 3) == 2 && b < 5) a |= (u64)pci_read(dev, 0x14 + b * 4) << 32;
      pci_bars[dev][b] = a;
    }
    if (!(pci_read(dev, 4) & (1u << 20))) continue;
    u32 cap = (pci_read(dev, 0x34) & 0xfc);
    for (u32 guard = 0; cap && guard < 48; guard++) {
      u32 h = pci_read(dev, cap);
      if ((h & 0xff) == 0x11) { /* MSI-X */
        u32 table = pci_read(dev, cap + 4);
        u32 entries = ((h >> 16) & 0x7ff) + 1;
        msix_table[dev] = pci_bars[dev][table & 7] + (table & ~7u);
        msix_end[dev] = msix_table[dev] + entries * 16 + 0x1000; /* and the PBA after it */
      }
      cap = (h >> 8) & 0xfc;
    }
  }
}

static void poke_uart(void) {
  u16 port = MICROVM_PORT_COM1 + (u16)(next() % 8);
  if (next() & 1)
    outb(port, (u8)next());
  else
    (void)inb(port);
}

static void poke_pci_mechanism(void) {
  u32 addr = (u32)next();
  if (next() % 4) addr = (addr & 0x00fffffcu) | 0x80000000u; /* mostly enabled, bus 0-255 */
  int w = rand_width();
  /* Partial accesses to the address register 0xcf8-0xcfb, except a byte at 0xcf9:
   * that is the reset control register. */
  u16 off = 0;
  if (w == 2) off = (u16)((next() % 2) * 2);
  if (w == 1) {
    off = (u16)(next() % 3);
    if (off) off++;
  }
  u16 port = MICROVM_PORT_PCI_CONFIG + off;
  if (next() & 1)
    io_write(port, w, (u32)next());
  else
    (void)io_read(port, w);
  outl(MICROVM_PORT_PCI_CONFIG, addr);
  u16 data_port = MICROVM_PORT_PCI_CONFIG + 4 + (u16)(w == 4 ? 0 : next() % (4 - (w == 2)));
  if (next() & 1)
    io_write(data_port, w, (u32)next());
  else
    (void)io_read(data_port, w);
}

static void poke_pci_device_config(void) {
  u32 dev = (u32)(next() % 4); /* the devices that exist live in the first slots */
  u32 off = (u32)(next() % 256) & ~3u;
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u | (dev << 11) | off);
  int w = rand_width();
  u16 port = MICROVM_PORT_PCI_CONFIG + 4 + (u16)(w == 4 ? 0 : (next() % 2) * (w == 2 ? 2 : 1));
  if (next() % 3) {
    (void)io_read(port, w);
    return;
  }
  u32 v = (u32)next();
  if (off >= 0x10 && off < 0x28 && (next() & 1)) v = 0xffffffffu; /* BAR sizing */
  io_write(port, w, v);
}

static void poke_pci_bars(void) {
  u32 dev = (u32)(next() % 32);
  u32 b = (u32)(next() % 6);
  u64 base = pci_bars[dev][b];
  if (!base || base >= 0x100000000ull) return;
  u64 a = base + (next() % 0x4000);
  int w = rand_width();
  a &= ~(u64)(w - 1);
  if (msix_table[dev] && a >= msix_table[dev] && a < msix_end[dev]) return;
  if (next() % 3) {
    (void)mmio_read(a, w);
    return;
  }
  u64 v = next();
  /* Queue ring addresses in virtio common cfg (0x20-0x37 when BAR offset 0). */
  if ((a - base) >= 0x20 && (a - base) < 0x38) v = safe_pointer();
  mmio_write(a, w, v);
}

static void poke_virtio_mmio(void) {
  u64 slot = MICROVM_VIRTIO_MMIO_BASE + (next() % 4) * 0x1000;
  u64 off = next() % 0x200;
  int w = 1 << (next() % 4); /* 1, 2, 4, 8 */
  off &= ~(u64)(w - 1);
  if (next() % 3) {
    (void)mmio_read(slot + off, w);
    return;
  }
  u64 v = next();
  if (off >= 0x80 && off < 0xb0) v = safe_pointer() >> ((off & 4) ? 32 : 0); /* ring addresses */
  if (off == 0x030 || off == 0x050) v %= 4; /* queue select / notify: mostly real queues */
  mmio_write(slot + off, w, v);
}

static void poke_misc(void) {
  switch (next() % 5) {
    case 0:
      outb(MICROVM_PORT_BOOT_MARKER, (u8)next());
      break;
    case 1:
      (void)inb(MICROVM_PORT_ACPI_SLEEP_STATUS);
      outb(MICROVM_PORT_ACPI_SLEEP_STATUS, (u8)next());
      break;
    case 2:
      (void)io_read(MICROVM_PORT_ACPI_PM1A_EVT + (u16)(next() % 4), 1);
      outw(MICROVM_PORT_ACPI_PM1A_EVT, (u16)next());
      break;
    case 3: { /* unassigned ports, avoiding legacy chips KVM emulates and the reset/sleep ones */
      u16 port = (u16)(0x700 + next() % 0x8000);
      if (port >= 0xcf8 && port <= 0xcff) break; /* PCI + the 0xcf9 reset register */
      if (next() & 1)
        io_write(port, rand_width(), (u32)next());
      else
        (void)io_read(port, rand_width());
      break;
    }
    default: { /* unassigned MMIO inside the PCI and virtio windows */
      u64 a = 0xd0800000ull + (next() % 0x100000) * 8;
      if (next() & 1)
        mmio_write(a, 4, next());
      else
        (void)mmio_read(a, 4);
    }
  }
}

static void uart_restore(void) {
  outb(MICROVM_PORT_COM1 + 3, 0x80); /* DLAB */
  outb(MICROVM_PORT_COM1 + 0, 1);    /* 115200 */
  outb(MICROVM_PORT_COM1 + 1, 0);
  outb(MICROVM_PORT_COM1 + 3, 0x03); /* 8N1, DLAB off */
  outb(MICROVM_PORT_COM1 + 1, 0);    /* no interrupts */
  outb(MICROVM_PORT_COM1 + 4, 0x03); /* DTR|RTS, loopback off */
  outb(MICROVM_PORT_COM1 + 2, 0x07); /* FIFO on, cleared */
}

void fw_main(u64 bp) {
  rng_state = cmdline_num(bp, "poke.seed=", 1) * 0x9e3779b97f4a7c15ull + 1;
  u64 rounds = cmdline_num(bp, "poke.rounds=", 3000);
  survey_pci();
  u32 host_id = pci_read(0, 0);
  u32 mmio_magic = *(volatile u32*)(usize)MICROVM_VIRTIO_MMIO_BASE;
  fw_puts("POKE start seed=");
  fw_put_dec(cmdline_num(bp, "poke.seed=", 1));
  fw_puts(" rounds=");
  fw_put_dec(rounds);
  fw_puts(" pci_host=");
  fw_put_hex(host_id);
  fw_puts(" mmio_magic=");
  fw_put_hex(mmio_magic);
  fw_putc('\n');
  /* No output from here until the UART is restored: loopback mode would swallow it. */
  for (u64 i = 0; i < rounds; i++) {
    switch (next() % 7) {
      case 0:
        poke_uart();
        break;
      case 1:
        poke_pci_mechanism();
        break;
      case 2:
        poke_pci_device_config();
        break;
      case 3:
      case 4:
        poke_pci_bars();
        break;
      case 5:
        poke_virtio_mmio();
        break;
      default:
        poke_misc();
        break;
    }
  }
  uart_restore();
  fw_puts("\nPOKE storm over\n");
  /* Everything must still answer. Reset virtio devices the way a driver would. */
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u);
  if (inl(MICROVM_PORT_PCI_CONFIG) != 0x80000000u) fail("PCI address register no longer reads back", 0);
  if (pci_read(0, 0) != host_id) fail("PCI host bridge id changed:", pci_read(0, 0));
  u32 magic = *(volatile u32*)(usize)MICROVM_VIRTIO_MMIO_BASE;
  if (magic != mmio_magic) fail("virtio-mmio magic changed:", magic);
  fw_puts("POKE done failures=");
  fw_put_dec(failures);
  fw_putc('\n');
}
