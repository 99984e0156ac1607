/* See virtio_driver.h. */
#include "virtio_driver.h"

#include "boot_params.h"
#include "microvm/guest_abi.h"

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

struct vq_desc vq_descs[QSIZE] __attribute__((aligned(4096)));
static struct avail avail_ring __attribute__((aligned(4096)));
static struct used used_ring __attribute__((aligned(4096)));
struct vtransport vio;
void (*vio_queue_hook)(u16 queue);
u64 vio_features;
static u16 next_avail, last_used;
static u32 failures;

void vio_line(const char* s) {
  fw_puts(vio_prefix);
  fw_puts(s);
}
void vb_line(const char* s) { vio_line(s); }
void vb_fail(const char* s) {
  failures++;
  fw_puts(vio_prefix);
  fw_puts("FAIL ");
  fw_puts(s);
  fw_putc('\n');
}
void vb_fail_hex(const char* s, u64 v) {
  failures++;
  fw_puts(vio_prefix);
  fw_puts("FAIL ");
  fw_puts(s);
  fw_putc(' ');
  fw_put_hex(v);
  fw_putc('\n');
}
u32 vio_failures(void) { return failures; }

u32 fnv1a(const u8* p, usize n) {
  u32 h = 2166136261u;
  for (usize i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

int vio_cmdline_has(u64 bp, const char* a, const char* b) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= 0x100000000ull) return 0;
  const char* c = (const char*)(usize)p;
  usize la = fw_strlen(a), lb = fw_strlen(b);
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i]; i++) {
    if (fw_memcmp(c + i, a, la) == 0 && fw_memcmp(c + i + la, b, lb) == 0) return 1;
  }
  return 0;
}

int vio_find(u64 bp, u32 device_id, const char* name) {
  int pci_only = vio_cmdline_has(bp, name, ".transport=pci");
  if (!pci_only && vt_mmio_probe(bp, device_id, &vio)) return 1;
  return vt_pci_probe(device_id, &vio);
}

int vio_init(u64 optional) { return vio_init_queue(optional, QSIZE, 0, 0, 0); }

int vio_init_queue(u64 optional, u16 size, u64 desc, u64 avail, u64 used) {
  /* Reset; reading back 0 means it finished (§4.1.4.3.1, §4.2.3.1). A device whose reset
   * waits for a vhost-user back end reads non-zero for a round trip: bounded polling. */
  vio.set_status(0);
  for (u32 i = 0; i < 1000000 && vio.get_status() != 0; i++) {
  }
  if (vio.get_status() != 0) {
    vb_fail("status did not read 0 after reset");
    return 0;
  }
  vio.set_status(S_ACKNOWLEDGE);
  vio.set_status(S_ACKNOWLEDGE | S_DRIVER);
  u64 f = vio.get_features();
  vio_features = f;
  if (!(f & (1ull << F_VERSION_1))) {
    vb_fail("device does not offer VIRTIO_F_VERSION_1");
    return 0;
  }
  vio.set_features((1ull << F_VERSION_1) | (f & optional));
  vio.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  if (!(vio.get_status() & S_FEATURES_OK)) {
    vb_fail("device refused FEATURES_OK");
    return 0;
  }
  if (vio.queue_enabled(0)) vb_fail("queue 0 enabled before setup");
  u32 max = vio.queue_max(0);
  if (max < QSIZE) {
    vb_fail_hex("queue 0 maximum size too small:", max);
    return 0;
  }
  memset(vq_descs, 0, sizeof vq_descs);
  memset(&avail_ring, 0, sizeof avail_ring);
  memset(&used_ring, 0, sizeof used_ring);
  next_avail = 0;
  last_used = 0;
  if (!desc) desc = (u64)(usize)vq_descs;
  if (!avail) avail = (u64)(usize)&avail_ring;
  if (!used) used = (u64)(usize)&used_ring;
  vio.queue_setup(0, size, desc, avail, used);
  if (vio_queue_hook) vio_queue_hook(0);
  vio.queue_enable(0);
  vio.set_status(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  vio_line("init transport=");
  fw_puts(vio.name);
  fw_puts(" features=");
  fw_put_hex(f);
  fw_puts(" queue_num_max=");
  fw_put_dec(max);
  fw_puts(" status=");
  fw_put_hex(vio.get_status());
  fw_putc('\n');
  return 1;
}

void vio_publish(u16 head) {
  avail_ring.ring[next_avail % QSIZE] = head;
  __asm__ volatile("" ::: "memory");
  next_avail++;
  *(volatile u16*)&avail_ring.idx = next_avail;
}

void vio_kick(void) {
  __asm__ volatile("" ::: "memory");
  vio.notify(0);
}

int vio_wait_used(u32* id, u32* len) {
  for (u32 i = 0; i < 400000; i++) {
    if (*(volatile u16*)&used_ring.idx != last_used) {
      __asm__ volatile("" ::: "memory");
      struct used_elem e = used_ring.ring[last_used % QSIZE];
      last_used++;
      *id = e.id;
      *len = e.len;
      return 1;
    }
  }
  return 0;
}

int vio_submit(u16 head, u32* used_len, int* needs_reset) {
  avail_ring.ring[next_avail % QSIZE] = head;
  __asm__ volatile("" ::: "memory"); /* ring entry before idx (x86 keeps store order) */
  next_avail++;
  *(volatile u16*)&avail_ring.idx = next_avail;
  __asm__ volatile("" ::: "memory"); /* the notify is an MMIO/PIO exit: no fence needed */
  vio.notify(0);
  *needs_reset = 0;
  /* The device completes on its own thread. A poll is a few emulated instructions; every
   * 256th also reads the status (a VM exit) to notice DEVICE_NEEDS_RESET. */
  for (u32 i = 0; i < 400000; i++) {
    if (*(volatile u16*)&used_ring.idx != last_used) {
      __asm__ volatile("" ::: "memory");
      struct used_elem e = used_ring.ring[last_used % QSIZE];
      last_used++;
      if (e.id != head) vb_fail_hex("used ring returned another head:", e.id);
      *used_len = e.len;
      return 1;
    }
    if ((i & 255) == 255 && (vio.get_status() & S_NEEDS_RESET)) {
      *needs_reset = 1;
      return 0;
    }
  }
  return 0;
}

int vio_hostile(const char* what, u16 head, u32* used_len, const volatile u8* status, u64 optional) {
  int needs_reset = 0;
  *used_len = 0;
  int done = vio_submit(head, used_len, &needs_reset);
  vio_line("hostile ");
  fw_puts(what);
  if (done) {
    fw_puts(" used_len=");
    fw_put_dec(*used_len);
    if (status) {
      fw_puts(" status=");
      fw_put_hex(*status);
    }
    fw_putc('\n');
  } else if (needs_reset) {
    fw_puts(" needs_reset=1\n");
    if (!vio_init(optional)) vb_fail("re-initialization after NEEDS_RESET failed");
  } else {
    fw_puts(" hung\n");
    vb_fail("device neither completed nor flagged a hostile request");
    vio_init(optional);
  }
  vio_ack_interrupt();
  return done;
}

int vio_publish_raw(u16 idx) {
  *(volatile u16*)&avail_ring.idx = idx;
  __asm__ volatile("" ::: "memory");
  vio.notify(0);
  for (u32 i = 0; i < 200000; i++) {
    if (*(volatile u16*)&used_ring.idx != last_used) return 1;
    if ((i & 255) == 255 && (vio.get_status() & S_NEEDS_RESET)) return 2;
  }
  return 0;
}

int vio_ack_interrupt(void) { return (int)(vio.isr_read_ack() & 1); }
