/* virtio_fs_driver: activates a virtio-fs device (virtio 1.2 §5.11) over virtio-mmio or
 * virtio-pci with its hiprio queue only (§5.11.2 lets a driver use fewer request queues), so
 * the VMM hands that queue to the share's vhost-user backend (virtiofsd). Prints
 * "VIRTIOFS ready tag=TAG", then polls the device status. When the backend dies, the device
 * must set DEVICE_NEEDS_RESET and raise a configuration-change interrupt (§2.1.2): the
 * firmware prints "VIRTIOFS needs-reset config-interrupt=0|1" and halts, so the VM stays up
 * for the host's checks. Never powers off by itself.
 * With "vfs.reset=1" it resets the device once it is ready (status 0, §2.4), which makes the
 * VMM stop the backend's queue, and prints "VIRTIOFS reset status=S" (S must be 0). */
#include "fw.h"
#include "virtio_driver.h"

const char vio_prefix[] = "VIRTIOFS ";

#define VIRTIO_ID_FS 26
#define TAG_BYTES 36

static void print_tag(void) {
  char tag[TAG_BYTES + 1];
  for (u32 i = 0; i < TAG_BYTES; i += 4) {
    u32 w = vio.config_read32(i);
    for (u32 b = 0; b < 4; b++) tag[i + b] = (char)(w >> (8 * b));
  }
  tag[TAG_BYTES] = 0;
  fw_puts(tag);
}

void fw_main(u64 bp) {
  vio_line("start\n");
  if (!vio_find(bp, VIRTIO_ID_FS, "vfs")) {
    vb_fail("no virtio-fs device (virtio-mmio on the command line or virtio-pci on bus 0)");
  } else if (vio_init(0)) {
    vio_ack_interrupt();
    vio_line("ready tag=");
    print_tag();
    fw_putc('\n');
    if (vio_cmdline_has(bp, "vfs", ".reset=1")) {
      vio.set_status(0);
      u8 after = vio.get_status();
      for (u32 polls = 0; polls < 1000000 && after != 0; polls++) after = vio.get_status();
      vio_line("reset status=");
      fw_put_dec(after);
      fw_putc('\n');
    }
    /* The host's test timeout bounds the wait; the bound here only keeps the loop finite. */
    u32 isr = 0;
    u8 status = vio.get_status();
    for (u64 polls = 0; polls < (1ull << 34) && !(status & S_NEEDS_RESET); polls++) {
      isr |= vio.isr_read_ack();
      status = vio.get_status();
    }
    /* The device sets the status before it raises the interrupt, so a poll can see the status
     * first: wait (bounded) for the interrupt that must follow. */
    for (u64 polls = 0; polls < (1ull << 30) && (status & S_NEEDS_RESET) && !(isr & 2); polls++)
      isr |= vio.isr_read_ack();
    if (status & S_NEEDS_RESET) {
      vio_line("needs-reset config-interrupt=");
      fw_put_dec((isr & 2) ? 1 : 0);
      fw_putc('\n');
    } else {
      vb_fail("the device never set DEVICE_NEEDS_RESET");
    }
  }
  vio_line("done failures=");
  fw_put_dec(vio_failures());
  fw_putc('\n');
  for (;;) __asm__ volatile("cli; hlt");
}
