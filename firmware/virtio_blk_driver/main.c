/* virtio_blk_driver: drives a virtio block device the way a guest driver does
 * (virtio 1.2 §3.1 initialization, §5.2 block device) over virtio-mmio (announced by
 * "virtio_mmio.device=" on the command line) or virtio-pci, then sends requests a
 * Linux driver never would. Prints "VIRTIOBLK ..." lines and powers off; the
 * integration test checks the lines and the disk image afterwards.
 *
 * Plan: report the hash of sectors 0-1 as found; write a pattern to sectors 2-3 and
 * read it back; flush; GET_ID; requests past the end and of unknown type; broken
 * chains (buffer outside RAM, wrapping buffer, descriptor loop, next out of range,
 * short header with a read-only status); finally a normal read proves the device
 * still works.
 *
 * "vblk.swap=1" instead: a media-change check (PATCH /drives/ID). Reads sectors 0-1, prints
 * "swap-ready", then polls the interrupt status for a configuration change (the host swaps
 * the image meanwhile); re-reads the capacity under the config generation, sectors 0-1 of
 * the new image, and writes sectors 2-3 of it. */
#include "fw.h"
#include "virtio_driver.h"

#define F_BLK_RO 5
#define F_BLK_FLUSH 9
#define OPTIONAL_FEATURES ((1ull << F_BLK_FLUSH) | (1ull << F_INDIRECT_DESC))

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define SECTOR 512

const char vio_prefix[] = "VIRTIOBLK ";

struct req_hdr {
  u32 type;
  u32 reserved;
  u64 sector;
};
static struct req_hdr hdr __attribute__((aligned(64)));
static u8 data[4 * SECTOR] __attribute__((aligned(4096)));
static volatile u8 status_byte __attribute__((aligned(64)));
static u64 capacity;

/* Batch and indirect requests: per-request headers, status bytes, data and tables. */
#define BATCH 8
static struct req_hdr bhdr[BATCH] __attribute__((aligned(64)));
static volatile u8 bstatus[BATCH] __attribute__((aligned(64)));
static u8 bdata[BATCH][2 * SECTOR] __attribute__((aligned(4096), section(".noinit")));
static struct vq_desc itable[8] __attribute__((aligned(64)));

static void fail(const char* s) { vb_fail(s); }

/* Capacity is a 64-bit config field: read it under the config generation (§2.5.1). */
static void read_capacity(void) {
  u32 gen;
  do {
    gen = vio.config_generation();
    capacity = vio.config_read32(0) | ((u64)vio.config_read32(4) << 32);
  } while (gen != vio.config_generation());
  vio_line("capacity=");
  fw_put_dec(capacity);
  fw_putc('\n');
}

/* A normal request: header, optional data, status. Returns the status byte, or -1 if
 * the device did not complete it. */
static int request(u32 type, u64 sector, u8* buf, u32 len) {
  hdr.type = type;
  hdr.reserved = 0;
  hdr.sector = sector;
  status_byte = 0xee;
  u16 st = len ? 2 : 1;
  vq_descs[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  if (len) vq_descs[1] = (struct vq_desc){(u64)(usize)buf, len, (u16)(DESC_NEXT | (type == T_OUT ? 0 : DESC_WRITE)), 2};
  vq_descs[st] = (struct vq_desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  u32 used_len = 0;
  int needs_reset = 0;
  if (!vio_submit(0, &used_len, &needs_reset)) return -1;
  /* §5.2.6.1: used.len counts the bytes the device wrote, status included. */
  u32 want = (type == T_IN || type == T_GET_ID) ? len + 1 : 1;
  if (status_byte == BLK_S_OK && used_len != want) vb_fail_hex("used length unexpected:", used_len);
  return status_byte;
}

static void report(const char* what, int st) {
  vio_line(what);
  fw_puts(" status=");
  if (st < 0)
    fw_puts("timeout");
  else
    fw_put_dec((u64)st);
  fw_putc('\n');
}

static void hostile(const char* what, u16 head) {
  u32 used_len;
  status_byte = 0xee;
  if (vio_hostile(what, head, &used_len, &status_byte, OPTIONAL_FEATURES) && used_len && status_byte == BLK_S_OK)
    fail("hostile request reported success");
}

static u8 pattern_byte(u32 req, u32 i) { return (u8)((req + 1) * 17 ^ (i * 5) ^ (i >> 9)); }

/* BATCH writes published together with one notification, completions collected in any
 * order; then BATCH reads whose data is split over two descriptors each (scatter). */
static void batch(void) {
  int ro = (vio_features >> F_BLK_RO) & 1; /* then writes fail with IOERR, reads see the old data */
  for (int phase = 0; phase < 2; phase++) {
    u32 type = phase == 0 ? T_OUT : T_IN;
    for (u32 r = 0; r < BATCH; r++) {
      bhdr[r] = (struct req_hdr){type, 0, 16 + 2 * r};
      bstatus[r] = 0xee;
      for (u32 i = 0; i < 2 * SECTOR; i++) bdata[r][i] = phase == 0 ? pattern_byte(r, i) : 0;
      u16 d = (u16)(4 * r); /* 4 descriptors per request: hdr, data[0:512], data[512:1024], status */
      u16 w = phase == 0 ? 0 : DESC_WRITE;
      vq_descs[d] = (struct vq_desc){(u64)(usize)&bhdr[r], sizeof bhdr[r], DESC_NEXT, (u16)(d + 1)};
      vq_descs[d + 1] = (struct vq_desc){(u64)(usize)bdata[r], SECTOR, (u16)(DESC_NEXT | w), (u16)(d + 2)};
      vq_descs[d + 2] = (struct vq_desc){(u64)(usize)bdata[r] + SECTOR, SECTOR, (u16)(DESC_NEXT | w), (u16)(d + 3)};
      vq_descs[d + 3] = (struct vq_desc){(u64)(usize)&bstatus[r], 1, DESC_WRITE, 0};
      vio_publish(d);
    }
    vio_kick();
    u32 seen = 0, bad = 0;
    for (u32 k = 0; k < BATCH; k++) {
      u32 id, len;
      if (!vio_wait_used(&id, &len)) break;
      if (id % 4 || id / 4 >= BATCH || (seen >> (id / 4) & 1)) {
        vb_fail_hex("batch: bogus or repeated used id", id);
        continue;
      }
      seen |= 1u << (id / 4);
      if (bstatus[id / 4] != BLK_S_OK) bad++;
      if (bstatus[id / 4] == BLK_S_OK && len != (type == T_IN ? 2 * SECTOR + 1 : 1))
        vb_fail_hex("batch: used length", len);
    }
    u32 mismatched = 0;
    if (phase == 1 && !ro) {
      for (u32 r = 0; r < BATCH; r++) {
        for (u32 i = 0; i < 2 * SECTOR; i++) {
          if (bdata[r][i] != pattern_byte(r, i)) {
            mismatched++;
            break;
          }
        }
      }
    }
    vio_line(phase == 0 ? "batch writes=" : "batch reads=");
    u32 n = 0;
    for (u32 r = 0; r < BATCH; r++) n += (seen >> r) & 1;
    fw_put_dec(n);
    fw_puts(" errors=");
    fw_put_dec(bad);
    fw_puts(" mismatched=");
    fw_put_dec(mismatched);
    fw_putc('\n');
    u32 want_bad = (ro && phase == 0) ? BATCH : 0;
    if (n != BATCH || bad != want_bad || mismatched) vb_fail("batch requests failed");
  }
}

/* One request through an indirect descriptor table (§2.7.5.3). */
static int indirect_read(u64 sector) {
  hdr = (struct req_hdr){T_IN, 0, sector};
  status_byte = 0xee;
  itable[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  itable[1] = (struct vq_desc){(u64)(usize)data, 2 * SECTOR, DESC_NEXT | DESC_WRITE, 2};
  itable[2] = (struct vq_desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 3 * sizeof itable[0], DESC_INDIRECT, 0};
  u32 len = 0;
  int nr = 0;
  if (!vio_submit(0, &len, &nr)) return -1;
  return status_byte;
}

static void batch_and_indirect(void) {
  batch();
  if (!(vio_features & (1ull << F_INDIRECT_DESC))) {
    vio_line("indirect not offered\n");
    return;
  }
  memset(data, 0, 2 * SECTOR);
  int st = indirect_read(16);
  int same = 1;
  for (u32 i = 0; i < 2 * SECTOR; i++) same &= data[i] == pattern_byte(0, i);
  vio_line("indirect read status=");
  fw_put_dec((u64)(st < 0 ? 255 : st));
  fw_puts(same ? " data=ok\n" : " data=bad\n");
  if (st != BLK_S_OK || (!same && !((vio_features >> F_BLK_RO) & 1))) fail("read through an indirect table failed");

  /* Broken indirect tables (§2.7.5.3.1). */
  hdr = (struct req_hdr){T_IN, 0, 0};
  itable[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  itable[1] = (struct vq_desc){(u64)(usize)itable, 2 * sizeof itable[0], DESC_INDIRECT, 0};
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 2 * sizeof itable[0], DESC_INDIRECT, 0};
  hostile("indirect_nested", 0);
  itable[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  itable[1] = (struct vq_desc){(u64)(usize)data, SECTOR, DESC_NEXT | DESC_WRITE, 0}; /* 1 -> 0 loop */
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 2 * sizeof itable[0], DESC_INDIRECT, 0};
  hostile("indirect_loop", 0);
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 40, DESC_INDIRECT, 0};
  hostile("indirect_len_not_multiple", 0);
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 0, DESC_INDIRECT, 0};
  hostile("indirect_len_zero", 0);
  vq_descs[0] = (struct vq_desc){0xc0000000ull, 3 * 16, DESC_INDIRECT, 0};
  hostile("indirect_outside_ram", 0);
  itable[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 9}; /* next past the table */
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 3 * sizeof itable[0], DESC_INDIRECT, 0};
  hostile("indirect_next_past_table", 0);
  vq_descs[0] = (struct vq_desc){(u64)(usize)itable, 0x100000, DESC_INDIRECT, 0}; /* 64Ki entries */
  hostile("indirect_table_huge", 0);
}

static void run(u64 bp) {
  if (!vio_find(bp, 2, "vblk")) {
    fail("no virtio block device (virtio-mmio on the command line or virtio-pci on bus 0)");
    return;
  }
  if (!vio_init(OPTIONAL_FEATURES)) return;
  read_capacity();
  if (capacity < 8) {
    fail("disk smaller than 8 sectors");
    return;
  }
  vio_ack_interrupt();

  /* 1. What the host put on the disk. */
  int st = request(T_IN, 0, data, 2 * SECTOR);
  report("read sector=0 count=2", st);
  if (st != BLK_S_OK) fail("read of sectors 0-1 failed");
  vio_line("initial fnv1a=");
  fw_put_hex(fnv1a(data, 2 * SECTOR));
  fw_putc('\n');
  vio_line(vio_ack_interrupt() ? "interrupt_status used=1\n" : "interrupt_status used=0\n");

  /* 2. Write a pattern to sectors 2-3, read it back into a clobbered buffer. */
  for (u32 i = 0; i < 2 * SECTOR; i++) data[i] = (u8)(i * 7 + 3 + (i >> 9));
  u32 written = fnv1a(data, 2 * SECTOR);
  int ro = (vio_features >> F_BLK_RO) & 1;
  st = request(T_OUT, 2, data, 2 * SECTOR);
  report("write sector=2 count=2", st);
  if (!ro && st != BLK_S_OK) fail("write failed");
  if (ro && st != BLK_S_IOERR) fail("write to a read-only disk did not fail with IOERR");
  memset(data, 0xaa, 2 * SECTOR);
  st = request(T_IN, 2, data, 2 * SECTOR);
  report("read sector=2 count=2", st);
  u32 back = fnv1a(data, 2 * SECTOR);
  vio_line("pattern written=");
  fw_put_hex(written);
  fw_puts(" read=");
  fw_put_hex(back);
  fw_putc('\n');
  if (!ro && back != written) fail("read-back differs from what was written");

  /* 3. Flush and GET_ID. */
  if (vio_features & (1ull << F_BLK_FLUSH)) {
    st = request(T_FLUSH, 0, FW_NULL, 0);
    report("flush", st);
    if (st != BLK_S_OK) fail("flush failed");
  } else {
    vio_line("flush not offered\n");
  }
  memset(data, 0, 32);
  st = request(T_GET_ID, 0, data, 20);
  vio_line("get_id status=");
  fw_put_dec((u64)(st < 0 ? 255 : st));
  fw_puts(" id=");
  usize n = 0;
  while (n < 20 && data[n]) n++;
  fw_put_bytes(data, n);
  fw_putc('\n');
  vio_ack_interrupt();

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

  hdr = (struct req_hdr){T_IN, 0, 0};
  /* Data buffer in the PCI MMIO window (not RAM). */
  vq_descs[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  vq_descs[1] = (struct vq_desc){0xc0000000ull, SECTOR, DESC_NEXT | DESC_WRITE, 2};
  vq_descs[2] = (struct vq_desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  hostile("buffer_outside_ram", 0);
  /* Buffer running off the end of the address space. */
  vq_descs[1] = (struct vq_desc){0xfffffffffffff000ull, 0x2000, DESC_NEXT | DESC_WRITE, 2};
  hostile("buffer_wraps", 0);
  /* Descriptor loop: 3 -> 4 -> 3 ... */
  vq_descs[3] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 4};
  vq_descs[4] = (struct vq_desc){(u64)(usize)data, SECTOR, DESC_NEXT | DESC_WRITE, 3};
  hostile("descriptor_loop", 3);
  /* Next index beyond the queue size. */
  vq_descs[5] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 200};
  hostile("next_out_of_range", 5);
  /* Header shorter than 16 bytes, and the status descriptor is device-readable. */
  vq_descs[6] = (struct vq_desc){(u64)(usize)&hdr, 8, DESC_NEXT, 7};
  vq_descs[7] = (struct vq_desc){(u64)(usize)&status_byte, 1, 0, 0};
  hostile("short_header", 6);

  /* Device-readable data buffer for a read: the device must not write it (§2.7.4.1). */
  memset(data, 0x5c, SECTOR);
  vq_descs[0] = (struct vq_desc){(u64)(usize)&hdr, sizeof hdr, DESC_NEXT, 1};
  vq_descs[1] = (struct vq_desc){(u64)(usize)data, SECTOR, DESC_NEXT, 2};
  vq_descs[2] = (struct vq_desc){(u64)(usize)&status_byte, 1, DESC_WRITE, 0};
  hostile("read_into_readonly_buffer", 0);
  for (u32 i = 0; i < SECTOR; i++) {
    if (data[i] != 0x5c) {
      fail("device wrote into a device-readable buffer");
      break;
    }
  }

  /* 5. Queue-level breakage; each is followed by a clean re-initialization. */
  u32 before = 0;
  (void)before;
  int outcome = vio_publish_raw(0x4000); /* avail idx far ahead of anything published */
  vio_line("hostile avail_idx_jump outcome=");
  fw_puts(outcome == 2 ? "needs_reset\n" : outcome == 1 ? "used\n" : "ignored\n");
  if (!vio_init(OPTIONAL_FEATURES)) fail("re-initialization after avail idx jump failed");
  /* Rings in the MMIO hole: the device must refuse or fail them, never touch host memory. */
  if (vio_init_queue(OPTIONAL_FEATURES, QSIZE, 0xc0000000ull, 0xc0001000ull, 0xc0002000ull)) {
    outcome = vio_publish_raw(1);
    vio_line("hostile rings_outside_ram outcome=");
    fw_puts(outcome == 2 ? "needs_reset\n" : outcome == 1 ? "used\n" : "ignored\n");
  }
  /* A split-ring size that is not a power of two (§2.7). */
  if (vio_init_queue(OPTIONAL_FEATURES, 7, 0, 0, 0)) {
    st = request(T_IN, 0, data, SECTOR);
    vio_line("hostile queue_size_7 status=");
    if (st < 0)
      fw_puts("timeout\n");
    else
      fw_put_dec((u64)st), fw_putc('\n');
  }
  vio_ack_interrupt();
  if (!vio_init(OPTIONAL_FEATURES)) fail("re-initialization after queue-level tests failed");

  batch_and_indirect();

  /* 6. The device still works. */
  st = request(T_IN, 2, data, 2 * SECTOR);
  report("final read sector=2 count=2", st);
  if (st != BLK_S_OK) fail("device unusable after hostile requests");
  if (!ro && fnv1a(data, 2 * SECTOR) != written) fail("final read-back differs");
  vio_line("final status=");
  fw_put_hex(vio.get_status());
  fw_putc('\n');
  vio.set_status(0); /* leave the device reset, as a driver's remove() does */
}

static void hash_line(const char* what) {
  vio_line(what);
  fw_puts(" fnv1a=");
  fw_put_hex(fnv1a(data, 2 * SECTOR));
  fw_putc('\n');
}

static void run_swap(u64 bp) {
  if (!vio_find(bp, 2, "vblk")) {
    fail("no virtio block device");
    return;
  }
  if (!vio_init(OPTIONAL_FEATURES)) return;
  read_capacity();
  if (request(T_IN, 0, data, 2 * SECTOR) != BLK_S_OK) fail("read of sectors 0-1 failed");
  u32 gen = vio.config_generation();
  vio_ack_interrupt();
  vio_line("swap-ready generation=");
  fw_put_dec(gen);
  fw_putc('\n');
  hash_line("before");
  /* The host's test timeout bounds the wait; the bound here only keeps the loop finite. */
  u32 isr = 0;
  for (u64 polls = 0; polls < (1ull << 34) && !(isr & 2); polls++) isr |= vio.isr_read_ack();
  if (!(isr & 2)) {
    fail("no configuration-change interrupt");
    return;
  }
  u32 gen_after = vio.config_generation();
  vio_line("config-interrupt generation=");
  fw_put_dec(gen_after);
  fw_putc('\n');
  if (gen_after == gen) fail("config generation did not change");
  read_capacity();
  int st = request(T_IN, 0, data, 2 * SECTOR);
  report("after read sector=0 count=2", st);
  hash_line("after");
  for (u32 i = 0; i < 2 * SECTOR; i++) data[i] = (u8)(i * 7 + 3 + (i >> 9));
  st = request(T_OUT, 2, data, 2 * SECTOR);
  report("after write sector=2 count=2", st);
  if (st != BLK_S_OK) fail("write to the new image failed");
  vio.set_status(0);
}

void fw_main(u64 bp) {
  vio_line("start\n");
  if (vio_cmdline_has(bp, "vblk", ".swap=1"))
    run_swap(bp);
  else
    run(bp);
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
}
