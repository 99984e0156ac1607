/* vhost_stall: a virtio-fs device whose vhost-user backend stops answering, next to a
 * virtio-rng device that must keep working (virtio-mmio only: the program keeps the fs
 * device's register window to poll its status while it drives the rng through the shared
 * driver core). It sets DRIVER_OK on the fs device (hiprio queue only), which the backend
 * never acknowledges, then reads entropy until the fs device reports DEVICE_NEEDS_RESET:
 *   VSTALL fs driver_ok status=0x..
 *   VSTALL rng reads while fs pending=N
 *   VSTALL fs needs-reset config-interrupt=0|1
 *   VSTALL rng after needs-reset used_len=N
 * A VMM that waits for the backend on its event loop (or on the vCPU writing DRIVER_OK)
 * shows NEEDS_RESET before any read. Halts at the end, so the host can look at the VM. */
#include "fw.h"
#include "virtio_driver.h"

const char vio_prefix[] = "VSTALL ";

#define VIRTIO_ID_FS 26
#define VIRTIO_ID_RNG 4
#define R_INTERRUPT_STATUS 0x060
#define R_INTERRUPT_ACK 0x064
#define R_STATUS 0x070

/* The fs device's hiprio queue: its own rings, apart from the driver core's (the rng's). */
static struct vq_desc fs_desc[QSIZE] __attribute__((aligned(4096)));
static u8 fs_avail[4096] __attribute__((aligned(4096)));
static u8 fs_used[4096] __attribute__((aligned(4096)));
static u8 buf[64] __attribute__((aligned(64)));
static u64 fs_base;

static u8 fs_status(void) { return (u8) * (volatile u32*)(usize)(fs_base + R_STATUS); }
static u32 fs_isr_read_ack(void) {
  u32 isr = *(volatile u32*)(usize)(fs_base + R_INTERRUPT_STATUS);
  if (isr) *(volatile u32*)(usize)(fs_base + R_INTERRUPT_ACK) = isr;
  return isr;
}

/* One 64-byte entropy request; its used length, or -1 if it did not complete. */
static long entropy(void) {
  vq_descs[0] = (struct vq_desc){(u64)(usize)buf, 64, DESC_WRITE, 0};
  u32 used_len = 0;
  int needs_reset = 0;
  if (!vio_submit(0, &used_len, &needs_reset)) return -1;
  return used_len;
}

static void run(u64 bp) {
  if (!vio_find(bp, VIRTIO_ID_FS, "vfs") || vio.name[0] != 'm') {
    vb_fail("no virtio-fs device on virtio-mmio (run with --transport mmio)");
    return;
  }
  fs_base = vt_mmio_base();
  if (!vio_init_queue(0, QSIZE, (u64)(usize)fs_desc, (u64)(usize)fs_avail, (u64)(usize)fs_used)) return;
  u8 status = fs_status();
  vio_line("fs driver_ok status=");
  fw_put_hex(status);
  fw_putc('\n');

  if (!vio_find(bp, VIRTIO_ID_RNG, "vrng") || !vio_init(0)) {
    vb_fail("no virtio entropy device");
    return;
  }
  /* Entropy while the fs activation is pending: each read is served by the event loop. */
  u64 reads = 0;
  u32 isr = 0;
  for (u32 i = 0; i < 1000000 && !(status & S_NEEDS_RESET); i++) {
    long n = entropy();
    if (n <= 0 || n > 64) {
      vb_fail_hex("entropy read failed while the fs backend hangs, used_len:", (u64)n);
      break;
    }
    status = fs_status();
    isr |= fs_isr_read_ack();
    if (!(status & S_NEEDS_RESET)) reads++;
  }
  vio_line("rng reads while fs pending=");
  fw_put_dec(reads);
  fw_putc('\n');
  /* The status comes before its configuration interrupt: wait (bounded) for the interrupt. */
  for (u64 polls = 0; polls < (1ull << 26) && (status & S_NEEDS_RESET) && !(isr & 2); polls++) isr |= fs_isr_read_ack();
  if (status & S_NEEDS_RESET) {
    vio_line("fs needs-reset config-interrupt=");
    fw_put_dec((isr & 2) ? 1 : 0);
    fw_putc('\n');
  } else {
    vb_fail("the fs device never set DEVICE_NEEDS_RESET");
  }
  long n = entropy();
  vio_line("rng after needs-reset used_len=");
  if (n < 0) {
    fw_puts("timeout\n");
    vb_fail("entropy request not completed after the fs device failed");
  } else {
    fw_put_dec((u64)n);
    fw_putc('\n');
  }
}

void fw_main(u64 bp) {
  vio_line("start\n");
  run(bp);
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
  for (;;) __asm__ volatile("cli; hlt");
}
