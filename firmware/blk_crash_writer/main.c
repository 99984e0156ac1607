/* blk_crash_writer: the guest half of the crash-consistency harness
 * (scripts/crash-harness.sh). Writes sequence-numbered 4 KiB blocks to a virtio block
 * device forever, several requests in flight, and every K writes (K cycling through
 * 1, 3, 8 in a seeded order) issues a FLUSH (virtio 1.2 §5.2.6: VIRTIO_BLK_T_FLUSH).
 * When a flush completes with VIRTIO_BLK_S_OK it prints "FLUSHED <F>": every write
 * with seq <= F had completed before that flush was submitted, so the host may demand
 * all of them after a SIGKILL of the VMM. (F is the contiguous completed prefix, not
 * just the highest completed seq: the device may complete writes out of order.)
 *
 * Write seq goes to block (seq * stride + offset) mod blocks. Block layout (u32 words,
 * little endian): each 512-byte sector i starts with magic 'CRSH', epoch, seq, block
 * index, i, check(epoch, seq, block, i); every other byte is zero. The host checks all of it (scripts/crash-harness.sh,
 * tests/integration/crash_consistency_test.cc).
 *
 * Command line: crash.epoch=E (distinguishes harness cycles on the same image),
 * crash.seed=S, crash.blocks=N (power of two, <= 4096), crash.stride=S (odd),
 * crash.offset=O, crash.depth=D (1..6 writes in flight), crash.k=K (fixed flush interval). "crash.transport=pci" skips
 * virtio-mmio (vio_find). */
#include "boot_params.h"
#include "fw.h"
#include "microvm/guest_abi.h"
#include "virtio_driver.h"

#define F_BLK_FLUSH 9
#define T_OUT 1
#define T_FLUSH 4
#define BLK_S_OK 0
#define SECTOR 512
#define BLOCK 4096
#define WORDS (BLOCK / 4)
#define MAGIC 0x48535243u /* "CRSH" */
#define MAX_DEPTH 6
#define FLUSH_HEAD (3 * MAX_DEPTH) /* descriptors 0..17: writes, 18..19: the flush */
#define DONE_RING 64               /* > MAX_DEPTH: completion flags by seq */

const char vio_prefix[] = "CRASH ";

struct req_hdr {
  u32 type;
  u32 reserved;
  u64 sector;
};

static struct req_hdr whdr[MAX_DEPTH] __attribute__((aligned(64)));
static volatile u8 wstatus[MAX_DEPTH] __attribute__((aligned(64)));
/* In .data, not .noinit or .bss: the zero fill then comes with the loaded image instead
 * of costing guest instructions (clearing 24 KiB takes ~100 ms on the emulating host). */
static u32 wbuf[MAX_DEPTH][WORDS] __attribute__((aligned(4096), section(".data")));
static u32 slot_seq[MAX_DEPTH]; /* 0: free */
static struct req_hdr fhdr __attribute__((aligned(64)));
static volatile u8 fstatus __attribute__((aligned(64)));
static u8 done_flag[DONE_RING];

/* --- command line ------------------------------------------------------------------ */

static const char* cmdline(u64 bp) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return FW_NULL;
  return (const char*)(usize)p;
}

/* The decimal value of "<key>=" (at the start or after a space), else `def`. Stops at
 * the first non-digit and saturates rather than overflowing. */
static u64 cmdline_u64(const char* c, const char* key, u64 def) {
  if (!c) return def;
  usize lk = fw_strlen(key);
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if ((i == 0 || c[i - 1] == ' ') && fw_memcmp(c + i, key, lk) == 0 && c[i + lk] == '=') {
      u64 v = 0;
      usize j = i + lk + 1;
      if (c[j] < '0' || c[j] > '9') return def;
      for (; c[j] >= '0' && c[j] <= '9'; j++) {
        if (v > 0xffffffffffffull) return def;
        v = v * 10 + (u64)(c[j] - '0');
      }
      return v;
    }
  }
  return def;
}

/* --- block contents (scripts/crash_verify.py mirrors this) -------------------------- */

/* The emulating test host runs guest code slowly, so a write must not rewrite 4 KiB:
 * the buffers stay zero apart from a small header each write stamps into every 512-byte
 * sector. The host requires all eight headers to agree and every other byte to be zero,
 * which catches a block torn at any sector boundary and any foreign bytes. */
#define SECTOR_WORDS (SECTOR / 4)
#define HDR_WORDS 6
static u32 sector_check(u32 epoch, u32 seq, u32 block, u32 i) {
  return ((epoch * 0x9E3779B1u) ^ (seq * 0x85EBCA6Bu) ^ (block * 0xC2B2AE35u) ^ (i * 0x27D4EB2Fu)) + 0x165667B1u;
}
static void fill_block(u32* w, u32 epoch, u32 seq, u32 block) {
  for (u32 i = 0; i < BLOCK / SECTOR; i++) {
    u32* h = w + i * SECTOR_WORDS;
    h[0] = MAGIC;
    h[1] = epoch;
    h[2] = seq;
    h[3] = block;
    h[4] = i;
    h[5] = sector_check(epoch, seq, block, i);
  }
}

/* --- main loop ----------------------------------------------------------------------- */

static u32 rng_state;
static u32 rng(void) {
  u32 x = rng_state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng_state = x;
  return x;
}
static u32 fixed_k; /* crash.k=N: flush every N writes instead of the seeded 1/3/8 mix */
static u32 pick_k(void) {
  static const u32 ks[3] = {1, 3, 8};
  if (fixed_k) return fixed_k;
  return ks[rng() % 3];
}

static void submit_write(u32 slot, u32 epoch, u32 seq, u32 block) {
  fill_block(wbuf[slot], epoch, seq, block);
  whdr[slot] = (struct req_hdr){T_OUT, 0, (u64)block * (BLOCK / SECTOR)};
  wstatus[slot] = 0xee;
  slot_seq[slot] = seq;
  u16 d = (u16)(3 * slot);
  vq_descs[d] = (struct vq_desc){(u64)(usize)&whdr[slot], sizeof whdr[slot], DESC_NEXT, (u16)(d + 1)};
  vq_descs[d + 1] = (struct vq_desc){(u64)(usize)wbuf[slot], BLOCK, DESC_NEXT, (u16)(d + 2)};
  vq_descs[d + 2] = (struct vq_desc){(u64)(usize)&wstatus[slot], 1, DESC_WRITE, 0};
  vio_publish(d);
}

static void submit_flush(void) {
  fhdr = (struct req_hdr){T_FLUSH, 0, 0};
  fstatus = 0xee;
  vq_descs[FLUSH_HEAD] = (struct vq_desc){(u64)(usize)&fhdr, sizeof fhdr, DESC_NEXT, FLUSH_HEAD + 1};
  vq_descs[FLUSH_HEAD + 1] = (struct vq_desc){(u64)(usize)&fstatus, 1, DESC_WRITE, 0};
  vio_publish(FLUSH_HEAD);
}

static void run(u64 bp) {
  const char* c = cmdline(bp);
  u32 epoch = (u32)cmdline_u64(c, "crash.epoch", 1);
  u32 blocks = (u32)cmdline_u64(c, "crash.blocks", 256);
  u32 stride = (u32)cmdline_u64(c, "crash.stride", 1);
  u32 offset = (u32)cmdline_u64(c, "crash.offset", 0);
  u32 depth = (u32)cmdline_u64(c, "crash.depth", 4);
  rng_state = (u32)cmdline_u64(c, "crash.seed", 1) | 1u;
  fixed_k = (u32)cmdline_u64(c, "crash.k", 0);
  if (fixed_k > 1000000) fixed_k = 1000000;
  if (blocks == 0 || blocks > 4096 || (blocks & (blocks - 1))) blocks = 256;
  if (!(stride & 1)) stride |= 1; /* odd: a bijection on every run of `blocks` seqs */
  if (depth < 1 || depth > MAX_DEPTH) depth = 4;

  if (!vio_find(bp, 2, "crash")) {
    vb_fail("no virtio block device found");
    return;
  }
  if (!vio_init(1ull << F_BLK_FLUSH)) return;
  if (!(vio_features & (1ull << F_BLK_FLUSH))) {
    vb_fail("device does not offer VIRTIO_BLK_F_FLUSH");
    return;
  }
  u64 capacity = vio.config_read32(0) | ((u64)vio.config_read32(4) << 32);
  if (capacity < (u64)blocks * (BLOCK / SECTOR)) {
    vb_fail_hex("disk too small, sectors:", capacity);
    return;
  }
  vio_line("ready epoch=");
  fw_put_dec(epoch);
  fw_puts(" blocks=");
  fw_put_dec(blocks);
  fw_puts(" stride=");
  fw_put_dec(stride);
  fw_puts(" offset=");
  fw_put_dec(offset);
  fw_puts(" depth=");
  fw_put_dec(depth);
  fw_putc('\n');

  u32 next_seq = 1, prefix = 0, in_flight = 0, since_flush = 0, k = pick_k();
  int flush_pending = 0;
  u32 flush_covers = 0;
  for (;;) {
    int kicked = 0;
    for (u32 s = 0; s < depth && since_flush < k; s++) {
      if (slot_seq[s]) continue;
      submit_write(s, epoch, next_seq, (next_seq * stride + offset) & (blocks - 1));
      next_seq++;
      since_flush++;
      in_flight++;
      kicked = 1;
    }
    if (since_flush >= k && !flush_pending && prefix > flush_covers) {
      /* The flush covers exactly the writes completed by now (§5.2.6.1 promises
       * durability only for completed writes); wait until it would cover something new.
       * Writes still in flight stay in flight across the flush. */
      flush_covers = prefix;
      submit_flush();
      flush_pending = 1;
      since_flush = 0;
      k = pick_k();
      kicked = 1;
    }
    if (kicked) vio_kick();
    if (!in_flight && !flush_pending) continue;

    u32 id, len;
    if (!vio_wait_used(&id, &len)) {
      vio_line("waiting\n"); /* a slow host, not an error: keep polling */
      continue;
    }
    if (id == FLUSH_HEAD && flush_pending) {
      flush_pending = 0;
      if (fstatus != BLK_S_OK) {
        vb_fail_hex("flush status", fstatus);
        continue;
      }
      fw_puts("FLUSHED ");
      fw_put_dec(flush_covers);
      fw_putc('\n');
      continue;
    }
    if (id % 3 || id / 3 >= depth || !slot_seq[id / 3]) {
      vb_fail_hex("bogus used id", id);
      continue;
    }
    u32 slot = id / 3, seq = slot_seq[slot];
    slot_seq[slot] = 0;
    in_flight--;
    if (wstatus[slot] != BLK_S_OK) {
      /* Stop: nothing after seq - 1 may ever be claimed as flushed. */
      vb_fail_hex("write status", wstatus[slot]);
      return;
    }
    done_flag[seq % DONE_RING] = 1;
    while (done_flag[(prefix + 1) % DONE_RING]) {
      done_flag[(prefix + 1) % DONE_RING] = 0;
      prefix++;
    }
  }
}

void fw_main(u64 bp) {
  vio_line("start\n");
  run(bp);
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
}
