/* virtio-mmio transport (virtio 1.2 §4.2.2 register layout). */
#include "boot_params.h"
#include "microvm/guest_abi.h"
#include "transport.h"

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEVICE_FEATURES 0x010
#define R_DEVICE_FEATURES_SEL 0x014
#define R_DRIVER_FEATURES 0x020
#define R_DRIVER_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INTERRUPT_STATUS 0x060
#define R_INTERRUPT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LOW 0x080
#define R_QUEUE_DESC_HIGH 0x084
#define R_QUEUE_DRIVER_LOW 0x090
#define R_QUEUE_DRIVER_HIGH 0x094
#define R_QUEUE_DEVICE_LOW 0x0a0
#define R_QUEUE_DEVICE_HIGH 0x0a4
#define R_CONFIG_GENERATION 0x0fc
#define R_CONFIG 0x100

static u64 base;
u32 vt_mmio_irq;

u64 vt_mmio_base(void) { return base; }

static u32 rd(u32 off) { return *(volatile u32*)(usize)(base + off); }
static void wr(u32 off, u32 v) { *(volatile u32*)(usize)(base + off) = v; }

static u8 get_status(void) { return (u8)rd(R_STATUS); }
static void set_status(u8 s) { wr(R_STATUS, s); }
static u64 get_features(void) {
  wr(R_DEVICE_FEATURES_SEL, 0);
  u64 f = rd(R_DEVICE_FEATURES);
  wr(R_DEVICE_FEATURES_SEL, 1);
  return f | ((u64)rd(R_DEVICE_FEATURES) << 32);
}
static void set_features(u64 f) {
  wr(R_DRIVER_FEATURES_SEL, 0);
  wr(R_DRIVER_FEATURES, (u32)f);
  wr(R_DRIVER_FEATURES_SEL, 1);
  wr(R_DRIVER_FEATURES, (u32)(f >> 32));
}
static u32 config_generation(void) { return rd(R_CONFIG_GENERATION); }
static u32 config_read32(u32 off) { return rd(R_CONFIG + off); }
static u32 queue_max(u16 q) {
  wr(R_QUEUE_SEL, q);
  return rd(R_QUEUE_NUM_MAX);
}
static int queue_enabled(u16 q) {
  wr(R_QUEUE_SEL, q);
  return rd(R_QUEUE_READY) != 0;
}
static void queue_setup(u16 q, u16 size, u64 d, u64 a, u64 u) {
  wr(R_QUEUE_SEL, q);
  wr(R_QUEUE_NUM, size);
  wr(R_QUEUE_DESC_LOW, (u32)d);
  wr(R_QUEUE_DESC_HIGH, (u32)(d >> 32));
  wr(R_QUEUE_DRIVER_LOW, (u32)a);
  wr(R_QUEUE_DRIVER_HIGH, (u32)(a >> 32));
  wr(R_QUEUE_DEVICE_LOW, (u32)u);
  wr(R_QUEUE_DEVICE_HIGH, (u32)(u >> 32));
}
static void queue_enable(u16 q) {
  wr(R_QUEUE_SEL, q);
  wr(R_QUEUE_READY, 1);
}
static void notify(u16 q) { wr(R_QUEUE_NOTIFY, q); }
static u32 isr_read_ack(void) {
  u32 isr = rd(R_INTERRUPT_STATUS);
  if (isr) wr(R_INTERRUPT_ACK, isr);
  return isr;
}

static u64 parse_hex(const char* s) {
  u64 v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
  for (;; s++) {
    char c = *s;
    u8 d;
    if (c >= '0' && c <= '9')
      d = (u8)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (u8)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = (u8)(c - 'A' + 10);
    else
      break;
    v = (v << 4) | d;
  }
  return v;
}

int vt_mmio_probe(u64 bp, u32 device_id, struct vtransport* t) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return 0;
  const char* c = (const char*)(usize)p;
  static const char key[] = "virtio_mmio.device=";
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, key, sizeof key - 1) != 0) continue;
    const char* s = c + i + sizeof key - 1;
    while (*s && *s != '@' && *s != ' ') s++;
    if (*s != '@') continue;
    u64 addr = parse_hex(s + 1);
    const char* q = s + 1;
    while (*q && *q != ':' && *q != ' ') q++;
    u32 irq = 0;
    if (*q == ':')
      for (q++; *q >= '0' && *q <= '9'; q++) irq = irq * 10 + (u32)(*q - '0');
    /* Only probe inside the ABI's virtio-mmio window, whatever the command line says. */
    if (addr < MICROVM_VIRTIO_MMIO_BASE || addr >= MICROVM_VIRTIO_MMIO_BASE + 0x1000000 || (addr & 0xfff)) continue;
    base = addr;
    u32 magic = rd(R_MAGIC), version = rd(R_VERSION), id = rd(R_DEVICE_ID);
    vb_line("probe mmio addr=");
    fw_put_hex(addr);
    fw_puts(" magic=");
    fw_put_hex(magic);
    fw_puts(" version=");
    fw_put_dec(version);
    fw_puts(" device_id=");
    fw_put_dec(id);
    fw_putc('\n');
    if (magic != 0x74726976 || id != device_id) continue;
    if (version != 2) {
      vb_fail_hex("virtio-mmio version is not 2 (modern):", version);
      continue;
    }
    vt_mmio_irq = irq;
    *t = (struct vtransport){"mmio",        get_status, set_status,    get_features, set_features, config_generation,
                             config_read32, queue_max,  queue_enabled, queue_setup,  queue_enable, notify,
                             isr_read_ack};
    return 1;
  }
  return 0;
}
