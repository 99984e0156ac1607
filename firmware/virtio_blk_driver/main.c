/* virtio_blk_driver: drives a virtio block device the way a guest driver does
 * (virtio 1.2 §3.1 device initialization, §5.2 block device) over virtio-mmio (when
 * "virtio_mmio.device=" is on the command line) or virtio-pci (transport_*.c),
 * then sends requests a Linux driver never would. Prints "VIRTIOBLK ..." lines and
 * powers off. The integration test checks the lines and the disk image afterwards.
 *
 * Plan: find the device from "virtio_mmio.device=" on the command line; report the
 * hash of sectors 0-1 as found; write a pattern to sectors 2-3 and read it back;
 * flush; GET_ID; then hostile requests (past the end, unknown type, buffer outside
 * RAM, a descriptor loop, a header split over two descriptors); finally a normal
 * read proves the device still works. */
#include "boot_params.h"
#include "fw.h"
#include "microvm/guest_abi.h"
#include "transport.h"

#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80

#define F_BLK_RO 5
#define F_BLK_FLUSH 9
#define F_VERSION_1 32

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2

#define DESC_NEXT 1
#define DESC_WRITE 2

#define QSIZE 8
#define SECTOR 512

struct desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct avail {
  u16 flags;
  u16 idx;
  u16 ring[QSIZE];
  u16 used_event;
};
struct used_elem {
  u32 id;
  u32 len;
};
struct used {
  u16 flags;
  u16 idx;
  struct used_elem ring[QSIZE];
  u16 avail_event;
};
struct req_hdr {
  u32 type;
  u32 reserved;
  u64 sector;
};

static struct desc descs[QSIZE] __attribute__((aligned(4096)));
static struct avail avail_ring __attribute__((aligned(4096)));
static struct used used_ring __attribute__((aligned(4096)));
static struct req_hdr hdr __attribute__((aligned(64)));
static u8 data[4 * SECTOR] __attribute__((aligned(4096)));
static u8 status_byte __attribute__((aligned(64)));

static struct vtransport vt;
static u16 next_avail;
static u16 last_used;
static u32 failures;
static u64 capacity;
static u64 features;

void vb_line(const char* s) {
  fw_puts("VIRTIOBLK ");
  fw_puts(s);
}
void vb_fail(const char* s) {
  failures++;
  fw_puts("VIRTIOBLK FAIL ");
  fw_puts(s);
  fw_putc('\n');
}
void vb_fail_hex(const char* s, u64 v) {
  failures++;
  fw_puts("VIRTIOBLK FAIL ");
  fw_puts(s);
  fw_putc(' ');
  fw_put_hex(v);
  fw_putc('\n');
}
#define line vb_line
#define fail vb_fail
#define fail_hex vb_fail_hex

static u32 fnv1a(const u8* p, usize n) {
  u32 h = 2166136261u;
  for (usize i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

/* ---- initialization (§3.1.1) ------------------------------------------------------ */

static int init_device(void) {
  vt.set_status(0); /* reset; reading back 0 means the reset finished (§4.1.4.3.1, §4.2.3.1) */
  for (u32 i = 0; i < 1000 && vt.get_status() != 0; i++) {
  }
  if (vt.get_status() != 0) {
    fail("status did not read 0 after reset");
    return 0;
  }
  vt.set_status(S_ACKNOWLEDGE);
  vt.set_status(S_ACKNOWLEDGE | S_DRIVER);
  u64 f = vt.get_features();
  features = f;
  if (!(f & (1ull << F_VERSION_1))) {
    fail("device does not offer VIRTIO_F_VERSION_1");
    return 0;
  }
  vt.set_features((1ull << F_VERSION_1) | (f & (1ull << F_BLK_FLUSH)));
  vt.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  if (!(vt.get_status() & S_FEATURES_OK)) {
    fail("device refused FEATURES_OK");
    return 0;
  }
  /* Capacity is 64-bit config: read it under the config generation (§2.5.1). */
  u32 gen;
  do {
    gen = vt.config_generation();
    capacity = vt.config_read32(0) | ((u64)vt.config_read32(4) << 32);
  } while (gen != vt.config_generation());

  if (vt.queue_enabled(0)) fail("queue 0 enabled before setup");
  u32 max = vt.queue_max(0);
  if (max < QSIZE) {
    fail_hex("queue 0 maximum size too small:", max);
    return 0;
  }
  memset(descs, 0, sizeof descs);
  memset(&avail_ring, 0, sizeof avail_ring);
  memset(&used_ring, 0, sizeof used_ring);
  next_avail = 0;
  last_used = 0;
  vt.queue_setup(0, QSIZE, (u64)(usize)descs, (u64)(usize)&avail_ring, (u64)(usize)&used_ring);
  vt.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  line("init transport=");
  fw_puts(vt.name);
  fw_puts(" features=");
  fw_put_hex(f);
  fw_puts(" capacity=");
  fw_put_dec(capacity);
  fw_puts(" queue_num_max=");
  fw_put_dec(max);
  fw_puts(" status=");
  fw_put_hex(vt.get_status());
  fw_putc('\n');
  return 1;
}

/* ---- requests --------------------------------------------------------------------- */

/* Publishes descriptor chain `head`, notifies, and polls the used ring. Returns 1 with
 * *used_len set when the device returned the chain, 0 if it did not within the poll
 * budget (then *needs_reset tells whether the device gave up on the queue). */
static int submit(u16 head, u32* used_len, int* needs_reset) {
  avail_ring.ring[next_avail % QSIZE] = head;
  __asm__ volatile("" ::: "memory"); /* ring entry before idx (x86 stores are ordered) */
  next_avail++;
  *(volatile u16*)&avail_ring.idx = next_avail;
  __asm__ volatile("" ::: "memory"); /* the notify below is an MMIO exit: no fence needed on x86 */
  vt.notify(0);
  *needs_reset = 0;
  /* The device completes on its own thread. Each poll is a few emulated instructions;
   * the MMIO status read every 256 polls costs a VM exit and checks for NEEDS_RESET. */
  for (u32 i = 0; i < 400000; i++) {
    if (*(volatile u16*)&used_ring.idx != last_used) {
      __asm__ volatile("" ::: "memory");
      struct used_elem e = used_ring.ring[last_used % QSIZE];
      last_used++;
      if (e.id != head) fail_hex("used ring returned another head:", e.id);
      *used_len = e.len;
      return 1;
    }
    if ((i & 255) == 255 && (vt.get_status() & S_NEEDS_RESET)) {
      *needs_reset = 1;
      return 0;
    }
  }
  return 0;
}

/* A normal 3-descriptor request: header, optional data, status. Returns the status
 * byte, or -1 if the device did not complete it. */
static int request(u32 type, u64 sector, u8* buf, u32 len) {
  hdr.type = type;
  hdr.reserved = 0;
  hdr.sector = sector;
  status_byte = 0xee;
  descs[0] = (struct desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  u16 st = 1;
  if (len) {
    descs[1] = (struct desc){(u64)(usize)buf, len, (u16)(DESC_NEXT | (type == T_OUT ? 0 : DESC_WRITE)), 2};
    st = 2;
  } else {
    descs[0].next = 1;
  }
  descs[st] = (struct desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  u32 used_len = 0;
  int nr = 0;
  if (!submit(0, &used_len, &nr)) return -1;
  /* §5.2.6.1: the device writes the status byte; used.len counts bytes written. */
  u32 want = (type == T_IN || type == T_GET_ID) ? len + 1 : 1;
  if (status_byte == BLK_S_OK && used_len != want) fail_hex("used length unexpected:", used_len);
  return status_byte;
}

static int ack_interrupt(void) { return (int)(vt.isr_read_ack() & 1); }

static void report(const char* what, int st) {
  line(what);
  fw_puts(" status=");
  if (st < 0)
    fw_puts("timeout");
  else
    fw_put_dec((u64)st);
  fw_putc('\n');
}

/* A hostile chain: returns "ok" if the device either completed it with an error
 * status / zero length or flagged NEEDS_RESET (then the device is re-initialized).
 * A hang is a failure; a VMM crash shows up in the test's exit code. */
static void hostile(const char* what, u16 head) {
  u32 used_len = 0;
  int needs_reset = 0;
  status_byte = 0xee;
  int done = submit(head, &used_len, &needs_reset);
  line("hostile ");
  fw_puts(what);
  if (done) {
    fw_puts(" used_len=");
    fw_put_dec(used_len);
    fw_puts(" status=");
    fw_put_hex(status_byte);
    fw_putc('\n');
    if (status_byte == BLK_S_OK) fail("hostile request reported success");
  } else if (needs_reset) {
    fw_puts(" needs_reset=1\n");
    if (!init_device()) fail("re-initialization after NEEDS_RESET failed");
  } else {
    fw_puts(" hung\n");
    fail("device neither completed nor flagged a hostile request");
    init_device();
  }
  ack_interrupt();
}

/* "vblk.transport=pci" forces PCI even if virtio-mmio devices are announced. */
static int want_pci(u64 bp) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return 0;
  static const char opt[] = "vblk.transport=pci";
  const char* c = (const char*)(usize)p;
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, opt, sizeof opt - 1) == 0) return 1;
  }
  return 0;
}

static void run(u64 bp) {
  int found = !want_pci(bp) && vt_mmio_probe(bp, 2, &vt);
  if (!found) found = vt_pci_probe(2, &vt);
  if (!found) {
    fail("no virtio block device (virtio-mmio on the command line or virtio-pci on bus 0)");
    return;
  }
  if (!init_device()) return;
  if (capacity < 8) {
    fail("disk smaller than 8 sectors");
    return;
  }
  ack_interrupt();

  /* 1. What the host put on the disk. */
  int st = request(T_IN, 0, data, 2 * SECTOR);
  report("read sector=0 count=2", st);
  if (st != BLK_S_OK) fail("read of sectors 0-1 failed");
  line("initial fnv1a=");
  fw_put_hex(fnv1a(data, 2 * SECTOR));
  fw_putc('\n');
  line(ack_interrupt() ? "interrupt_status used=1\n" : "interrupt_status used=0\n");

  /* 2. Write a pattern to sectors 2-3, read it back into a clobbered buffer. */
  for (u32 i = 0; i < 2 * SECTOR; i++) data[i] = (u8)(i * 7 + 3 + (i >> 9));
  u32 written = fnv1a(data, 2 * SECTOR);
  int ro = (features >> F_BLK_RO) & 1;
  st = request(T_OUT, 2, data, 2 * SECTOR);
  report("write sector=2 count=2", st);
  if (!ro && st != BLK_S_OK) fail("write failed");
  if (ro && st != BLK_S_IOERR) fail("write to a read-only disk did not fail with IOERR");
  memset(data, 0xaa, 2 * SECTOR);
  st = request(T_IN, 2, data, 2 * SECTOR);
  report("read sector=2 count=2", st);
  u32 back = fnv1a(data, 2 * SECTOR);
  line("pattern written=");
  fw_put_hex(written);
  fw_puts(" read=");
  fw_put_hex(back);
  fw_putc('\n');
  if (!ro && back != written) fail("read-back differs from what was written");

  /* 3. Flush and GET_ID. */
  if (features & (1ull << F_BLK_FLUSH)) {
    st = request(T_FLUSH, 0, FW_NULL, 0);
    report("flush", st);
    if (st != BLK_S_OK) fail("flush failed");
  } else {
    line("flush not offered\n");
  }
  memset(data, 0, 32);
  st = request(T_GET_ID, 0, data, 20);
  line("get_id status=");
  fw_put_dec((u64)(st < 0 ? 255 : st));
  fw_puts(" id=");
  usize n = 0;
  while (n < 20 && data[n]) n++;
  fw_put_bytes(data, n);
  fw_putc('\n');
  ack_interrupt();

  /* 4. Requests a Linux driver would not send. */
  st = request(T_IN, capacity, data, SECTOR);
  report("read past end", st);
  if (st != BLK_S_IOERR) fail("read past the end did not fail with IOERR");
  st = request(T_IN, capacity - 1, data, 2 * SECTOR);
  report("read straddling end", st);
  if (st != BLK_S_IOERR) fail("read straddling the end did not fail with IOERR");
  st = request(0x7777, 0, data, SECTOR);
  report("unknown type", st);
  if (st != BLK_S_UNSUPP) fail("unknown request type did not fail with UNSUPP");

  /* Data buffer in the MMIO hole (not RAM). */
  hdr = (struct req_hdr){T_IN, 0, 0};
  descs[0] = (struct desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  descs[1] = (struct desc){MICROVM_PCI_MMIO_BASE, SECTOR, DESC_NEXT | DESC_WRITE, 2};
  descs[2] = (struct desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  hostile("buffer_outside_ram", 0);
  /* Buffer that runs off the end of the address space. */
  descs[1] = (struct desc){0xfffffffffffff000ull, 0x2000, DESC_NEXT | DESC_WRITE, 2};
  hostile("buffer_wraps", 0);
  /* Descriptor loop: 3 -> 4 -> 3 ... */
  descs[3] = (struct desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 4};
  descs[4] = (struct desc){(u64)(usize)data, SECTOR, DESC_NEXT | DESC_WRITE, 3};
  hostile("descriptor_loop", 3);
  /* Next index beyond the queue size. */
  descs[5] = (struct desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 200};
  hostile("next_out_of_range", 5);
  /* Header shorter than 16 bytes and status descriptor read-only. */
  descs[6] = (struct desc){(u64)(usize)&hdr, 8, DESC_NEXT, 7};
  descs[7] = (struct desc){(u64)(usize)&status_byte, 1, 0, 0};
  hostile("short_header", 6);

  /* 5. The device still works. */
  st = request(T_IN, 2, data, 2 * SECTOR);
  report("final read sector=2 count=2", st);
  if (st != BLK_S_OK) fail("device unusable after hostile requests");
  if (!ro && fnv1a(data, 2 * SECTOR) != written) fail("final read-back differs");
  line("final status=");
  fw_put_hex(vt.get_status());
  fw_putc('\n');
  vt.set_status(0); /* leave the device reset, as a driver's remove() does */
}

void fw_main(u64 bp) {
  line("start\n");
  run(bp);
  line("done failures=");
  fw_put_dec(failures);
  fw_putc('\n');
}
