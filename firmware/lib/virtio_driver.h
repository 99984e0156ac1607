/* A minimal virtio driver core shared by the virtio test firmware: device discovery
 * (virtio-mmio from the command line, else virtio-pci), initialization (virtio 1.2
 * §3.1.1), one split virtqueue of QSIZE entries in .bss (§2.7), polled completion,
 * and submission of deliberately broken chains. Output lines start with the program's
 * prefix (vio_prefix), e.g. "VIRTIOBLK ". */
#ifndef MICROVM_FW_VIRTIO_DRIVER_H
#define MICROVM_FW_VIRTIO_DRIVER_H

#include "fw.h"
#include "transport.h"

#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80
#define F_VERSION_1 32

#define DESC_NEXT 1
#define DESC_WRITE 2
#define DESC_INDIRECT 4
#define F_INDIRECT_DESC 28
#define QSIZE 32

struct vq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};

extern const char vio_prefix[]; /* defined by each program */
extern struct vtransport vio;   /* the device found by vio_find() */
extern struct vq_desc vq_descs[QSIZE];
extern u64 vio_features; /* offered by the device */
/* Called by vio_init between writing queue 0's registers and enabling it (e.g. to set
 * its MSI-X vector); NULL by default. */
extern void (*vio_queue_hook)(u16 queue);

void vio_line(const char* text); /* "<prefix><text>" */
u32 vio_failures(void);

/* Finds a device of `device_id` ("<name>.transport=pci" on the command line skips
 * virtio-mmio). */
int vio_find(u64 boot_params, u32 device_id, const char* name);
/* Reset, negotiate VERSION_1 plus (offered & optional), set up queue 0, DRIVER_OK. */
int vio_init(u64 optional_features);
/* vio_init with queue 0 of `size` entries at the given rings (0: the built-in ones):
 * lets a test hand the device a broken queue. */
int vio_init_queue(u64 optional_features, u16 size, u64 desc, u64 avail, u64 used);
/* Sets avail->idx to `idx` without publishing ring entries and notifies: 1 if the
 * device then used something, 2 if it set NEEDS_RESET, 0 if nothing happened. */
int vio_publish_raw(u16 idx);
/* Publishes the chain at `head`, notifies queue 0, polls the used ring. 1: completed
 * (*used_len set); 0: not completed (*needs_reset says whether the device set
 * DEVICE_NEEDS_RESET). */
int vio_submit(u16 head, u32* used_len, int* needs_reset);
/* Submits a broken chain and prints "<prefix>hostile <what> used_len=N[ status=S]" or
 * "... needs_reset=1" (then re-initializes the device). A hang is a failure. Returns 1
 * if the chain completed; the caller judges *used_len and its status byte (`status`,
 * may be NULL). */
int vio_hostile(const char* what, u16 head, u32* used_len, const volatile u8* status, u64 optional_features);
/* Batches: publish several heads, notify once, then collect completions in any order. */
void vio_publish(u16 head);
void vio_kick(void);
/* 1 and the used element if one arrives within the poll budget, else 0. */
int vio_wait_used(u32* id, u32* len);
/* Reads and acknowledges the interrupt status; 1 if a used-buffer notification was flagged. */
int vio_ack_interrupt(void);

u32 fnv1a(const u8* p, usize n);
/* 1 if the kernel command line contains a followed by b ("vblk", ".swap=1"). */
int vio_cmdline_has(u64 bp, const char* a, const char* b);

#endif
