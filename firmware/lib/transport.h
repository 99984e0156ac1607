/* A virtio transport as seen by a driver: virtio-mmio (virtio 1.2 §4.2) or virtio-pci
 * modern (§4.1). The block driver in main.c uses only this interface. */
#ifndef MICROVM_FW_VIRTIO_TRANSPORT_H
#define MICROVM_FW_VIRTIO_TRANSPORT_H

#include "fw.h"

struct vtransport {
  const char* name;
  u8 (*get_status)(void);
  void (*set_status)(u8 status);
  u64 (*get_features)(void);
  void (*set_features)(u64 features);
  u32 (*config_generation)(void);
  u32 (*config_read32)(u32 offset);
  u32 (*queue_max)(u16 queue); /* after selecting; 0 if the queue does not exist */
  int (*queue_enabled)(u16 queue);
  void (*queue_setup)(u16 queue, u16 size, u64 desc, u64 avail, u64 used);
  void (*queue_enable)(u16 queue);
  void (*notify)(u16 queue);
  u32 (*isr_read_ack)(void); /* bit 0: used-buffer notification */
};

/* Finds a device of `device_id` announced as "virtio_mmio.device=" on the command line. */
int vt_mmio_probe(u64 boot_params, u32 device_id, struct vtransport* out);
/* Finds a virtio-pci modern device of `device_id` on PCI bus 0 (configuration
 * mechanism #1), enables memory decoding and bus mastering. */
int vt_pci_probe(u32 device_id, struct vtransport* out);

/* The interrupt line of the device vt_mmio_probe found ("...:<irq>" on the command line). */
extern u32 vt_mmio_irq;
/* The register window of the device vt_mmio_probe found last (a program driving two
 * devices keeps the first one's to read its registers directly). */
u64 vt_mmio_base(void);
/* virtio-pci MSI-X: enables MSI-X on the device vt_pci_probe found with table entry 0 =
 * (addr, data), unmasked. Returns 0 if the device has no usable MSI-X capability. */
int vt_pci_msix_enable(u64 msg_addr, u32 msg_data);
/* Routes `queue` to MSI-X entry `vector` (config changes to none); returns the value
 * the device reads back (0xffff = refused, §4.1.5.1.2). */
u16 vt_pci_set_queue_vector(u16 queue, u16 vector);

/* Shared reporting (virtio_driver.c). */
void vb_line(const char* text);
void vb_fail(const char* text);
void vb_fail_hex(const char* text, u64 value);

#endif
