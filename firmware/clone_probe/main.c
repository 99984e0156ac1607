/* clone_probe: guest RAM as one copy-on-write clone sees it (ClonePool tests). Fills an area
 * of AREA_PAGES pages with 0x5a, prints "CLONEPROBE ready" and then serves one-byte commands
 * read from COM1: for each byte c it reports what the area held before ("CLONEPROBE saw=<hex>
 * uniform=<0|1>": its first byte, and whether every byte of every page was that one), then
 * fills the area with c. 'q' powers off. A host test snapshots it while it waits and checks
 * that every clone starts from the snapshot's pages, never another clone's writes. */
#include "fw.h"
#include "microvm/guest_abi.h"

#define AREA_PAGES 16
#define AREA_WORDS (AREA_PAGES * 4096 / 8)
#define LSR_DATA_READY 0x01

static u64 area[AREA_WORDS] __attribute__((aligned(4096)));

static void fill(u8 c) {
  u64 word = 0x0101010101010101ull * c;
  for (u32 i = 0; i < AREA_WORDS; i++) ((volatile u64*)area)[i] = word;
}

static u8 read_byte(void) {
  for (;;) {
    if (inb(MICROVM_PORT_COM1 + 5) & LSR_DATA_READY) return inb(MICROVM_PORT_COM1);
    /* Every poll is an exit to the VMM: wait a little between them. */
    for (volatile u32 spin = 0; spin < 200; spin++) {
    }
  }
}

void fw_main(u64 boot_params) {
  (void)boot_params;
  fill(0x5a);
  fw_puts("CLONEPROBE ready\n");
  for (;;) {
    u8 c = read_byte();
    if (c == 'q') fw_poweroff();
    if (c == '\n' || c == '\r') continue;
    u64 first = ((volatile u64*)area)[0];
    u64 uniform = (first & 0xff) * 0x0101010101010101ull == first;
    for (u32 i = 1; i < AREA_WORDS && uniform; i++) uniform = ((volatile u64*)area)[i] == first;
    fw_puts("CLONEPROBE saw=");
    fw_put_hex(first & 0xff);
    fw_puts(uniform ? " uniform=1\n" : " uniform=0\n");
    fill(c);
  }
}
