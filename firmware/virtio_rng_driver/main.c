/* virtio_rng_driver: drives the virtio entropy device (virtio 1.2 §5.4) over
 * virtio-mmio or virtio-pci: two normal requests (bytes arrive, differ between
 * requests), then chains a Linux driver never sends (device-readable buffer, buffer
 * outside RAM, wrapping buffer, descriptor loop, next out of range, zero length),
 * then a normal request again. Prints "VIRTIORNG ..." lines and powers off. */
#include "fw.h"
#include "virtio_driver.h"

const char vio_prefix[] = "VIRTIORNG ";

static u8 buf[2][64] __attribute__((aligned(64)));

/* Returns the used length of a 64-byte device-writable request, or -1 on timeout. */
static long entropy(u8* dst) {
  memset(dst, 0, 64);
  vq_descs[0] = (struct vq_desc){(u64)(usize)dst, 64, DESC_WRITE, 0};
  u32 used_len = 0;
  int needs_reset = 0;
  if (!vio_submit(0, &used_len, &needs_reset)) return -1;
  return used_len;
}

static void report(const char* what, long n, const u8* p) {
  vio_line(what);
  fw_puts(" used_len=");
  if (n < 0) {
    fw_puts("timeout\n");
    vb_fail("entropy request not completed");
    return;
  }
  fw_put_dec((u64)n);
  fw_puts(" fnv1a=");
  fw_put_hex(fnv1a(p, 64));
  fw_putc('\n');
  if (n == 0 || n > 64) vb_fail_hex("entropy used length out of range:", (u64)n);
}

static void hostile(const char* what, u16 head) {
  u32 used_len;
  if (vio_hostile(what, head, &used_len, FW_NULL, 0) && used_len > 0)
    vb_fail("device claims to have written into an unusable buffer");
}

static void run(u64 bp) {
  if (!vio_find(bp, 4, "vrng")) {
    vb_fail("no virtio entropy device (virtio-mmio on the command line or virtio-pci on bus 0)");
    return;
  }
  if (!vio_init(0)) return;
  vio_ack_interrupt();
  long a = entropy(buf[0]);
  report("read 1", a, buf[0]);
  vio_line(vio_ack_interrupt() ? "interrupt_status used=1\n" : "interrupt_status used=0\n");
  long b = entropy(buf[1]);
  report("read 2", b, buf[1]);
  if (a > 0 && b > 0 && fw_memcmp(buf[0], buf[1], 64) == 0) vb_fail("two entropy reads returned the same bytes");

  /* A device-readable buffer: the device must not write into it (§2.7.4). */
  vq_descs[0] = (struct vq_desc){(u64)(usize)buf[0], 64, 0, 0};
  hostile("readonly_buffer", 0);
  vq_descs[0] = (struct vq_desc){0xc0000000ull, 64, DESC_WRITE, 0};
  hostile("buffer_outside_ram", 0);
  vq_descs[0] = (struct vq_desc){0xffffffffffffffc0ull, 0x80, DESC_WRITE, 0};
  hostile("buffer_wraps", 0);
  vq_descs[1] = (struct vq_desc){(u64)(usize)buf[0], 64, DESC_WRITE | DESC_NEXT, 2};
  vq_descs[2] = (struct vq_desc){(u64)(usize)buf[1], 64, DESC_WRITE | DESC_NEXT, 1};
  hostile("descriptor_loop", 1);
  vq_descs[3] = (struct vq_desc){(u64)(usize)buf[0], 64, DESC_WRITE | DESC_NEXT, 100};
  hostile("next_out_of_range", 3);

  long c = entropy(buf[0]);
  report("final read", c, buf[0]);
  vio_line("final status=");
  fw_put_hex(vio.get_status());
  fw_putc('\n');
  vio.set_status(0);
}

void fw_main(u64 bp) {
  vio_line("start\n");
  run(bp);
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
}
