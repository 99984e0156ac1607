/* virtio-pci modern transport (virtio 1.2 §4.1): PCI configuration mechanism #1 on
 * bus 0, vendor-specific capabilities locating the common, notify, ISR and device
 * configuration structures in memory BARs. MSI-X stays disabled, so the device must
 * report queue interrupts in the ISR status (§4.1.4.5). */
#include "microvm/guest_abi.h"
#include "transport.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define CAP_VENDOR 0x09
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4

/* Common configuration structure offsets (§4.1.4.3). */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_NUM_QUEUES 0x12
#define C_STATUS 0x14
#define C_CFGGEN 0x15
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_ENABLE 0x1c
#define C_Q_NOTIFY_OFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_DRIVER 0x28
#define C_Q_DEVICE 0x30

static u64 common, notify_base, isr, devcfg;
static u32 found_dev;
#define C_MSIX_CONFIG 0x10
#define C_Q_MSIX 0x1a
static u32 notify_mult;

static u32 cfg_read(u32 dev, u32 off) {
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u | (dev << 11) | (off & 0xfc));
  return inl(MICROVM_PORT_PCI_CONFIG + 4);
}
static void cfg_write(u32 dev, u32 off, u32 v) {
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u | (dev << 11) | (off & 0xfc));
  outl(MICROVM_PORT_PCI_CONFIG + 4, v);
}
static u8 cfg_read8(u32 dev, u32 off) { return (u8)(cfg_read(dev, off) >> ((off & 3) * 8)); }

static u8 r8(u64 a) { return *(volatile u8*)(usize)a; }
static u16 r16(u64 a) { return *(volatile u16*)(usize)a; }
static u32 r32(u64 a) { return *(volatile u32*)(usize)a; }
static void w8(u64 a, u8 v) { *(volatile u8*)(usize)a = v; }
static void w16(u64 a, u16 v) { *(volatile u16*)(usize)a = v; }
static void w32(u64 a, u32 v) { *(volatile u32*)(usize)a = v; }
static void w64(u64 a, u64 v) { /* §4.1.3.1: two 32-bit halves are fine */
  w32(a, (u32)v);
  w32(a + 4, (u32)(v >> 32));
}

static u8 get_status(void) { return r8(common + C_STATUS); }
static void set_status(u8 s) { w8(common + C_STATUS, s); }
static u64 get_features(void) {
  w32(common + C_DFSELECT, 0);
  u64 f = r32(common + C_DF);
  w32(common + C_DFSELECT, 1);
  return f | ((u64)r32(common + C_DF) << 32);
}
static void set_features(u64 f) {
  w32(common + C_GFSELECT, 0);
  w32(common + C_GF, (u32)f);
  w32(common + C_GFSELECT, 1);
  w32(common + C_GF, (u32)(f >> 32));
}
static u32 config_generation(void) { return r8(common + C_CFGGEN); }
static u32 config_read32(u32 off) { return r32(devcfg + off); }
static u32 queue_max(u16 q) {
  if (q >= r16(common + C_NUM_QUEUES)) return 0;
  w16(common + C_Q_SELECT, q);
  return r16(common + C_Q_SIZE);
}
static int queue_enabled(u16 q) {
  w16(common + C_Q_SELECT, q);
  return r16(common + C_Q_ENABLE) != 0;
}
static void queue_setup(u16 q, u16 size, u64 d, u64 a, u64 u) {
  w16(common + C_Q_SELECT, q);
  w16(common + C_Q_SIZE, size);
  w64(common + C_Q_DESC, d);
  w64(common + C_Q_DRIVER, a);
  w64(common + C_Q_DEVICE, u);
}
static void queue_enable(u16 q) {
  w16(common + C_Q_SELECT, q);
  w16(common + C_Q_ENABLE, 1);
}
static void notify(u16 q) {
  w16(common + C_Q_SELECT, q);
  u16 off = r16(common + C_Q_NOTIFY_OFF);
  w16(notify_base + (u64)off * notify_mult, q);
}
static u32 isr_read_ack(void) { return r8(isr); /* reading clears it (§4.1.4.5) */ }

/* Address of BAR `bar` of device `dev`, or 0 if it is not a usable memory BAR. */
static u64 bar_address(u32 dev, u8 bar) {
  if (bar > 5) return 0;
  u32 lo = cfg_read(dev, 0x10 + bar * 4u);
  if (lo & 1) return 0; /* I/O BAR */
  u64 a = lo & ~0xfull;
  if (((lo >> 1) & 3) == 2 && bar < 5) a |= (u64)cfg_read(dev, 0x14 + bar * 4u) << 32;
  return a;
}

int vt_pci_probe(u32 device_id, struct vtransport* t) {
  for (u32 dev = 0; dev < 32; dev++) {
    u32 id = cfg_read(dev, 0);
    if ((id & 0xffff) != VIRTIO_PCI_VENDOR) continue;
    u32 did = id >> 16;
    vb_line("probe pci slot=");
    fw_put_dec(dev);
    fw_puts(" device=");
    fw_put_hex(did);
    fw_putc('\n');
    if (did != 0x1040 + device_id) continue;
    if (!(cfg_read(dev, 0x04) & (1u << 20))) {
      vb_fail("virtio-pci device without a capability list");
      continue;
    }
    common = notify_base = isr = devcfg = 0;
    notify_mult = 0;
    u8 cap = cfg_read8(dev, 0x34) & 0xfc;
    for (u32 guard = 0; cap && guard < 48; guard++) {
      u8 vndr = cfg_read8(dev, cap), next = cfg_read8(dev, cap + 1);
      if (vndr == CAP_VENDOR) {
        u8 type = cfg_read8(dev, cap + 3), bar = cfg_read8(dev, cap + 4);
        u64 addr = bar_address(dev, bar);
        u64 at = addr ? addr + cfg_read(dev, cap + 8) : 0;
        /* The first capability of each type is the preferred one (§4.1.4). */
        if (type == CFG_COMMON && !common) common = at;
        if (type == CFG_NOTIFY && !notify_base) {
          notify_base = at;
          notify_mult = cfg_read(dev, cap + 16);
        }
        if (type == CFG_ISR && !isr) isr = at;
        if (type == CFG_DEVICE && !devcfg) devcfg = at;
      }
      cap = next & 0xfc;
    }
    vb_line("pci caps common=");
    fw_put_hex(common);
    fw_puts(" notify=");
    fw_put_hex(notify_base);
    fw_puts(" mult=");
    fw_put_dec(notify_mult);
    fw_puts(" isr=");
    fw_put_hex(isr);
    fw_puts(" device=");
    fw_put_hex(devcfg);
    fw_putc('\n');
    if (!common || !notify_base || !isr || !devcfg) {
      vb_fail("virtio-pci capability missing or its BAR unassigned");
      continue;
    }
    u64 highest = common > notify_base ? common : notify_base;
    if (isr > highest) highest = isr;
    if (devcfg > highest) highest = devcfg;
    if (highest >= 0x100000000ull) {
      vb_fail_hex("virtio-pci BAR above 4 GiB (not identity-mapped here):", highest);
      continue;
    }
    /* Memory space + bus master; leave INTx enabled (MSI-X stays off). */
    cfg_write(dev, 0x04, (cfg_read(dev, 0x04) & 0xffff) | 0x6);
    found_dev = dev;
    *t = (struct vtransport){"pci",         get_status, set_status,    get_features, set_features, config_generation,
                             config_read32, queue_max,  queue_enabled, queue_setup,  queue_enable, notify,
                             isr_read_ack};
    return 1;
  }
  return 0;
}

int vt_pci_msix_enable(u64 msg_addr, u32 msg_data) {
  u32 dev = found_dev;
  u8 cap = cfg_read8(dev, 0x34) & 0xfc;
  for (u32 guard = 0; cap && guard < 48; guard++) {
    if (cfg_read8(dev, cap) == 0x11) {
      u32 table = cfg_read(dev, cap + 4);
      u64 bar = bar_address(dev, (u8)(table & 7));
      if (!bar || bar >= 0x100000000ull) return 0;
      u64 entry = bar + (table & ~7u);
      w32(entry + 0, (u32)msg_addr);
      w32(entry + 4, (u32)(msg_addr >> 32));
      w32(entry + 8, msg_data);
      w32(entry + 12, 0); /* vector control: unmasked */
      u32 hdr = cfg_read(dev, cap);
      cfg_write(dev, cap, (hdr & 0x3fffffffu) | (1u << 31)); /* MSI-X enable, function unmasked */
      return 1;
    }
    cap = cfg_read8(dev, cap + 1) & 0xfc;
  }
  return 0;
}

u16 vt_pci_set_queue_vector(u16 queue, u16 vector) {
  w16(common + C_MSIX_CONFIG, 0xffff);
  w16(common + C_Q_SELECT, queue);
  w16(common + C_Q_MSIX, vector);
  return r16(common + C_Q_MSIX);
}
