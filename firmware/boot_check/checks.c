/* See checks.h. The host emulates guest kernel mode at about 2M instructions/s, so
 * every loop here is bounded and short: no scans over large memory. */
#include "checks.h"

#include "boot_params.h"
#include "microvm/guest_abi.h"

static u32 failures;

void bootcheck_line(const char* text) {
  fw_puts("BOOTCHECK ");
  fw_puts(text);
}

void bootcheck_fail(const char* reason) {
  failures++;
  fw_puts("BOOTCHECK FAIL ");
  fw_puts(reason);
  fw_putc('\n');
}

void bootcheck_fail_hex(const char* reason, u64 value) {
  failures++;
  fw_puts("BOOTCHECK FAIL ");
  fw_puts(reason);
  fw_putc(' ');
  fw_put_hex(value);
  fw_putc('\n');
}

u32 bootcheck_failures(void) { return failures; }

/* ---- page tables ------------------------------------------------------------------ */

#define PTE_P 0x1ull
#define PTE_PS 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull
#define FOUR_GIB 0x100000000ull

/* Returns 1 and sets *phys if `va` is mapped by the current page tables. Only reads
 * tables that lie below 4 GiB (the part the boot protocol maps for us). */
static int translate(u64 va, u64* phys) {
  u64 table = read_cr3() & PTE_ADDR;
  static const int shifts[4] = {39, 30, 21, 12};
  for (int level = 0; level < 4; level++) {
    if (table >= FOUR_GIB) return 0;
    u64 e = ld64(table + ((va >> shifts[level]) & 511) * 8);
    if (!(e & PTE_P)) return 0;
    if ((level == 1 || level == 2) && (e & PTE_PS)) {
      u64 page = 1ull << shifts[level];
      *phys = (e & PTE_ADDR & ~(page - 1)) | (va & (page - 1));
      return 1;
    }
    table = e & PTE_ADDR;
  }
  *phys = table | (va & 0xfff);
  return 1;
}

static int identity_at(u64 va) {
  u64 pa;
  return translate(va, &pa) && pa == va;
}

int bootcheck_identity_mapped(u64 start, u64 end) {
  if (end <= start) return 1;
  for (u64 a = start; a < end; a = (a + 0x200000) & ~0x1fffffull) {
    if (!identity_at(a)) return 0;
  }
  return identity_at(end - 1);
}

/* ---- CPU state at entry ----------------------------------------------------------- */

static void check_cpu_state(void) {
  u64 efer = rdmsr(0xc0000080);
  int long_mode = (read_cr0() & (1ull << 31)) && (read_cr4() & (1ull << 5)) && (efer & (1ull << 10));
  int intr = (fw_entry_rflags >> 9) & 1;
  bootcheck_line("cpu_state cs=");
  fw_put_hex(fw_entry_cs);
  fw_puts(" ds=");
  fw_put_hex(fw_entry_ds);
  fw_puts(" ss=");
  fw_put_hex(fw_entry_ss);
  fw_puts(" if=");
  fw_put_dec(intr);
  fw_puts(" long_mode=");
  fw_put_dec(long_mode);
  fw_putc('\n');
  if (fw_entry_cs != 0x10) bootcheck_fail_hex("cs is not 0x10:", fw_entry_cs);
  if (fw_entry_ds != 0x18) bootcheck_fail_hex("ds is not 0x18:", fw_entry_ds);
  if (fw_entry_ss != 0x18) bootcheck_fail_hex("ss is not 0x18:", fw_entry_ss);
  if (intr) bootcheck_fail("interrupts enabled at entry");
  if (!long_mode) bootcheck_fail("not in long mode with paging");

  /* The boot protocol's __BOOT_CS/__BOOT_DS must be real descriptors in the GDT: the
   * kernel reloads segment registers from them before it installs its own GDT. */
  struct __attribute__((packed)) {
    u16 limit;
    u64 base;
  } gdtr;
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  u64 cs_desc = 0, ds_desc = 0;
  if (gdtr.limit >= 0x1f && gdtr.base < FOUR_GIB) {
    cs_desc = ld64(gdtr.base + 0x10);
    ds_desc = ld64(gdtr.base + 0x18);
  }
  int cs_ok =
      (cs_desc >> 47 & 1) && (cs_desc >> 44 & 1) && (cs_desc >> 43 & 1) && (cs_desc >> 53 & 1) && !(cs_desc >> 54 & 1);
  int ds_ok = (ds_desc >> 47 & 1) && (ds_desc >> 44 & 1) && !(ds_desc >> 43 & 1) && (ds_desc >> 41 & 1);
  u64 apic_base = rdmsr(0x1b);
  bootcheck_line("gdt base=");
  fw_put_hex(gdtr.base);
  fw_puts(" limit=");
  fw_put_hex(gdtr.limit);
  fw_puts(" cs_desc=");
  fw_put_hex(cs_desc);
  fw_puts(" ds_desc=");
  fw_put_hex(ds_desc);
  fw_puts(" apic_base=");
  fw_put_hex(apic_base);
  fw_putc('\n');
  if (!cs_ok) bootcheck_fail_hex("GDT entry 0x10 is not a present 64-bit code segment:", cs_desc);
  if (!ds_ok) bootcheck_fail_hex("GDT entry 0x18 is not a present writable data segment:", ds_desc);
  if ((apic_base & ~0xfffull) != MICROVM_LAPIC_ADDR || !(apic_base & (1u << 11)) || !(apic_base & (1u << 8)))
    bootcheck_fail_hex("IA32_APIC_BASE is not an enabled BSP at 0xfee00000:", apic_base);
}

static void check_identity_map(u64 image_start, u64 image_end) {
  static const u64 probes[] = {
      0x0,        MICROVM_ZERO_PAGE_ADDR, MICROVM_CMDLINE_ADDR, MICROVM_ACPI_ADDR, 0x100000, 0x3fffffff, 0x40000000,
      0xbffff000, MICROVM_IOAPIC_ADDR,    MICROVM_LAPIC_ADDR,   0xfffff000};
  u32 n = 0;
  for (u32 i = 0; i < sizeof(probes) / sizeof(probes[0]); i++, n++) {
    if (!identity_at(probes[i])) bootcheck_fail_hex("not identity-mapped:", probes[i]);
  }
  if (!bootcheck_identity_mapped(image_start, image_end)) bootcheck_fail("own image not identity-mapped");
  bootcheck_line("identity_map probes=");
  fw_put_dec(n + 2);
  fw_puts(" cr3=");
  fw_put_hex(read_cr3());
  fw_putc('\n');
}

/* ---- e820 ------------------------------------------------------------------------- */

struct e820 {
  u32 n;
  u64 addr[BP_E820_MAX];
  u64 size[BP_E820_MAX];
  u32 type[BP_E820_MAX];
};
static struct e820 map;

static void load_e820(u64 bp) {
  u32 n = ld8(bp + BP_E820_ENTRIES);
  if (n > BP_E820_MAX) {
    bootcheck_fail_hex("e820_entries too large:", n);
    n = BP_E820_MAX;
  }
  map.n = n;
  for (u32 i = 0; i < n; i++) {
    u64 e = bp + BP_E820_TABLE + (u64)i * BP_E820_ENTRY_SIZE;
    map.addr[i] = ld64(e);
    map.size[i] = ld64(e + 8);
    map.type[i] = ld32(e + 16);
  }
}

/* 1 if [start, start+len) lies inside one e820 RAM entry. */
static int in_ram(u64 start, u64 len) {
  for (u32 i = 0; i < map.n; i++) {
    if (map.type[i] != E820_RAM) continue;
    if (start >= map.addr[i] && start - map.addr[i] <= map.size[i] && len <= map.size[i] - (start - map.addr[i]))
      return 1;
  }
  return 0;
}

/* 1 if [start, end) overlaps any e820 RAM entry. */
static int overlaps_ram(u64 start, u64 end) {
  for (u32 i = 0; i < map.n; i++) {
    if (map.type[i] == E820_RAM && map.addr[i] < end && start < map.addr[i] + map.size[i]) return 1;
  }
  return 0;
}

static void check_e820(void) {
  u64 ram = 0;
  u32 ram_ranges = 0;
  if (map.n == 0) bootcheck_fail("e820 is empty");
  for (u32 i = 0; i < map.n; i++) {
    bootcheck_line("e820 entry addr=");
    fw_put_hex(map.addr[i]);
    fw_puts(" size=");
    fw_put_hex(map.size[i]);
    fw_puts(" type=");
    fw_put_dec(map.type[i]);
    fw_putc('\n');
    if (map.size[i] == 0) bootcheck_fail_hex("e820 entry of size 0 at", map.addr[i]);
    if (map.addr[i] + map.size[i] < map.addr[i]) bootcheck_fail_hex("e820 entry wraps at", map.addr[i]);
    if (i > 0 && map.addr[i] < map.addr[i - 1] + map.size[i - 1])
      bootcheck_fail_hex("e820 unsorted or overlapping at", map.addr[i]);
    if (map.type[i] == E820_RAM) {
      ram += map.size[i];
      ram_ranges++;
    }
  }
  bootcheck_line("e820 n=");
  fw_put_dec(map.n);
  fw_puts(" ram_ranges=");
  fw_put_dec(ram_ranges);
  fw_puts(" ram=");
  fw_put_dec(ram);
  fw_putc('\n');
  if (!in_ram(0, 0xa0000 - 0x1000)) bootcheck_fail("no RAM below 640K");
  if (overlaps_ram(0xa0000, 0x100000)) bootcheck_fail("RAM in the 0xa0000-0xfffff legacy hole");
  if (overlaps_ram(MICROVM_MMIO_GAP_START, FOUR_GIB)) bootcheck_fail("RAM in the 32-bit MMIO gap");
  if (!in_ram(MICROVM_ZERO_PAGE_ADDR, 0x1000)) bootcheck_fail("zero page is not in RAM");
}

/* ---- memory test ------------------------------------------------------------------ */

#define MEMTEST_MAX 64
/* Own page tables mapping 0-8 GiB with 2 MiB pages, to reach RAM above 4 GiB. */
#define HIGH_MAP_GIB 8
static u64 pml4[512] __attribute__((aligned(4096), section(".noinit")));
static u64 pdpt[512] __attribute__((aligned(4096), section(".noinit")));
static u64 pds[HIGH_MAP_GIB][512] __attribute__((aligned(4096), section(".noinit")));

/* Identity-maps 0..8 GiB and switches CR3 to it. Our tables are in .bss, which the
 * boot protocol's identity map covers, so their virtual and physical addresses agree. */
static void map_8gib(void) {
  for (u32 i = 0; i < 512; i++) pml4[i] = pdpt[i] = 0; /* .noinit: not cleared at entry */
  for (u32 g = 0; g < HIGH_MAP_GIB; g++) {
    for (u32 i = 0; i < 512; i++) pds[g][i] = ((u64)g << 30) + ((u64)i << 21) + 0x83; /* P|RW|PS */
    pdpt[g] = (u64)(usize)pds[g] + 0x3;
  }
  pml4[0] = (u64)(usize)pdpt + 0x3;
  write_cr3((u64)(usize)pml4);
}

/* Writes an address-dependent pattern at the first and last qword of every RAM range
 * (below 8 GiB), then verifies them all (a missing or aliased memory slot shows up as
 * a mismatch), then restores the old contents. */
static void memory_test(u64 image_start, u64 image_end) {
  u64 addrs[MEMTEST_MAX];
  u64 saved[MEMTEST_MAX];
  u32 n = 0;
  int high = 0;
  for (u32 i = 0; i < map.n && n + 2 <= MEMTEST_MAX; i++) {
    if (map.type[i] != E820_RAM || map.size[i] < 16) continue;
    u64 first = (map.addr[i] + 7) & ~7ull;
    u64 last = (map.addr[i] + map.size[i] - 8) & ~7ull;
    u64 cand[2] = {first, last};
    for (int k = 0; k < 2; k++) {
      u64 a = cand[k];
      if (a + 8 > ((u64)HIGH_MAP_GIB << 30)) continue;
      if (a + 8 > image_start && a < image_end) continue; /* our code, data and stack */
      if (a >= FOUR_GIB) high = 1;
      addrs[n++] = a;
    }
  }
  if (high) map_8gib();
  for (u32 i = 0; i < n; i++) saved[i] = ld64(addrs[i]);
  for (u32 i = 0; i < n; i++) *(volatile u64*)(usize)addrs[i] = addrs[i] ^ 0x5a5aa5a5c3c33c3cull;
  u32 bad = 0;
  for (u32 i = 0; i < n; i++) {
    if (ld64(addrs[i]) != (addrs[i] ^ 0x5a5aa5a5c3c33c3cull)) {
      bootcheck_fail_hex("memory test mismatch at", addrs[i]);
      bad++;
    }
  }
  for (u32 i = 0; i < n; i++) *(volatile u64*)(usize)addrs[i] = saved[i];
  u32 low = 0, hi = 0;
  for (u32 i = 0; i < n; i++) {
    if (addrs[i] < FOUR_GIB)
      low++;
    else
      hi++;
  }
  if (!bad) {
    bootcheck_line("lowmem_ok probes=");
    fw_put_dec(low);
    fw_putc('\n');
    if (hi) {
      bootcheck_line("highmem_ok probes=");
      fw_put_dec(hi);
      fw_putc('\n');
    }
  }
}

/* ---- command line and initrd ------------------------------------------------------ */

static void check_cmdline(u64 bp) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (p == 0) {
    bootcheck_fail("cmd_line_ptr is 0");
    return;
  }
  if (p >= FOUR_GIB) {
    bootcheck_fail_hex("cmdline above 4 GiB:", p);
    return;
  }
  if (!in_ram(p, 1)) bootcheck_fail_hex("cmdline not in RAM:", p);
  usize len = 0;
  while (len < MICROVM_CMDLINE_MAX && ld8(p + len)) len++;
  if (len == MICROVM_CMDLINE_MAX) bootcheck_fail("cmdline not NUL-terminated");
  bootcheck_line("cmdline_addr=");
  fw_put_hex(p);
  fw_puts(" len=");
  fw_put_dec(len);
  fw_putc('\n');
  bootcheck_line("cmdline=");
  fw_put_bytes((const u8*)(usize)p, len);
  fw_putc('\n');
  /* "bootcheck.poweroff=pm1a": power off through PM1a_CNT, the register Linux uses. */
  static const char opt[] = "bootcheck.poweroff=pm1a";
  for (usize i = 0; i + sizeof opt - 1 <= len; i++) {
    if (fw_memcmp((const void*)(usize)(p + i), opt, sizeof opt - 1) == 0) {
      fw_poweroff_use_pm1a();
      bootcheck_line("poweroff=pm1a\n");
      break;
    }
  }
}

static void check_initrd(u64 bp) {
  u64 addr = ld32(bp + HDR_RAMDISK_IMAGE) | ((u64)ld32(bp + BP_EXT_RAMDISK_IMAGE) << 32);
  u64 size = ld32(bp + HDR_RAMDISK_SIZE) | ((u64)ld32(bp + BP_EXT_RAMDISK_SIZE) << 32);
  if (size == 0) {
    bootcheck_line("initrd none\n");
    return;
  }
  if (addr + size < addr || addr + size > FOUR_GIB) {
    bootcheck_fail_hex("initrd beyond the identity map at", addr);
    return;
  }
  if (addr & 0xfff) bootcheck_fail_hex("initrd not page-aligned:", addr);
  if (!in_ram(addr, size)) bootcheck_fail_hex("initrd not inside one RAM range:", addr);
  /* FNV-1a (32-bit) and a plain byte sum; tests use small initrds, this is ~5
   * emulated instructions per byte. */
  u32 fnv = 2166136261u;
  u32 sum = 0;
  const u8* b = (const u8*)(usize)addr;
  for (u64 i = 0; i < size; i++) {
    fnv = (fnv ^ b[i]) * 16777619u;
    sum += b[i];
  }
  bootcheck_line("initrd addr=");
  fw_put_hex(addr);
  fw_puts(" size=");
  fw_put_dec(size);
  fw_puts(" sum=");
  fw_put_hex(sum);
  fw_puts(" fnv1a=");
  fw_put_hex(fnv);
  fw_putc('\n');
}

/* ---- setup_data ------------------------------------------------------------------- */

static void check_setup_data(u64 bp) {
  u64 node = ld64(bp + HDR_SETUP_DATA);
  u32 count = 0;
  int seed_found = 0;
  while (node) {
    if (++count > 16) {
      bootcheck_fail("setup_data chain longer than 16 (loop?)");
      break;
    }
    if (node >= FOUR_GIB - 16 || !in_ram(node, 16)) {
      bootcheck_fail_hex("setup_data node outside RAM:", node);
      break;
    }
    u32 type = ld32(node + 8);
    u32 len = ld32(node + 12);
    if (!in_ram(node + 16, len)) {
      bootcheck_fail_hex("setup_data payload outside RAM at", node);
      break;
    }
    if (type == SETUP_RNG_SEED) {
      u8 any = 0;
      for (u32 i = 0; i < len && i < 256; i++) any |= ld8(node + 16 + i);
      bootcheck_line("rng_seed=present len=");
      fw_put_dec(len);
      fw_puts(any ? " nonzero=1\n" : " nonzero=0\n");
      if (len < 16) bootcheck_fail("rng seed shorter than 16 bytes");
      if (!any) bootcheck_fail("rng seed is all zero");
      seed_found = 1;
    }
    node = ld64(node);
  }
  bootcheck_line("setup_data n=");
  fw_put_dec(count);
  fw_putc('\n');
  if (!seed_found) {
    bootcheck_line("rng_seed=absent\n");
    bootcheck_fail("no SETUP_RNG_SEED in setup_data");
  }
}

/* ---- ACPI ------------------------------------------------------------------------- */

#define SIG4(a, b, c, d) ((u32)(a) | ((u32)(b) << 8) | ((u32)(c) << 16) | ((u32)(d) << 24))
#define RSDP_SIG 0x2052545020445352ull /* "RSD PTR " */
#define ACPI_TABLE_MAX 0x100000

static u8 checksum(u64 addr, u32 len) {
  u8 s = 0;
  for (u32 i = 0; i < len; i++) s += ld8(addr + i);
  return s;
}

/* Validates a table header at `addr`: below 4 GiB, sane length, checksum. Returns its
 * length, or 0 (after reporting) if it is unusable. */
static u32 table_ok(u64 addr, u32 want_sig, const char* what) {
  if (addr == 0 || addr >= FOUR_GIB - 36) {
    bootcheck_fail_hex(what, addr);
    return 0;
  }
  u32 len = ld32(addr + 4);
  if (len < 36 || len > ACPI_TABLE_MAX || addr + len > FOUR_GIB) {
    bootcheck_fail_hex("ACPI table with bad length at", addr);
    return 0;
  }
  if (want_sig && ld32(addr) != want_sig) {
    bootcheck_fail_hex(what, addr);
    return 0;
  }
  if (checksum(addr, len) != 0) {
    bootcheck_fail_hex("ACPI table checksum wrong at", addr);
    return 0;
  }
  if (in_ram(addr, len)) bootcheck_fail_hex("ACPI table in usable RAM at", addr);
  return len;
}

static void check_madt(u64 madt, u32 len) {
  u32 cpus = 0, disabled = 0, ioapics = 0;
  u32 lapic = ld32(madt + 36);
  u64 p = madt + 44;
  while (p + 2 <= madt + len) {
    u8 type = ld8(p);
    u8 elen = ld8(p + 1);
    if (elen < 2 || p + elen > madt + len) {
      bootcheck_fail_hex("MADT entry with bad length at", p);
      break;
    }
    if (type == 0 && elen >= 8) { /* processor local APIC */
      if (ld32(p + 4) & 1)
        cpus++;
      else
        disabled++;
    } else if (type == 9 && elen >= 16) { /* processor local x2APIC */
      if (ld32(p + 8) & 1)
        cpus++;
      else
        disabled++;
    } else if (type == 1 && elen >= 12) { /* I/O APIC */
      ioapics++;
      if (ld32(p + 4) != MICROVM_IOAPIC_ADDR) bootcheck_fail_hex("IOAPIC address", ld32(p + 4));
    }
    p += elen;
  }
  bootcheck_line("cpus=");
  fw_put_dec(cpus);
  fw_puts(" disabled=");
  fw_put_dec(disabled);
  fw_puts(" ioapics=");
  fw_put_dec(ioapics);
  fw_puts(" lapic=");
  fw_put_hex(lapic);
  fw_putc('\n');
  if (lapic != MICROVM_LAPIC_ADDR) bootcheck_fail_hex("MADT local APIC address", lapic);
  if (ioapics != 1) bootcheck_fail("MADT does not have exactly one IOAPIC");
  if (cpus == 0) bootcheck_fail("MADT lists no enabled CPU");
}

/* Finds a 4-byte name in AML bytes; the DSDT is small, so a plain scan is fine. */
static int aml_has(u64 addr, u32 len, u32 name) {
  for (u32 i = 36; i + 4 <= len; i++) {
    if (ld32(addr + i) == name) return 1;
  }
  return 0;
}

static void check_fadt(u64 fadt, u32 len) {
  if (len < 276) {
    bootcheck_fail_hex("FADT shorter than ACPI 6 (276 bytes):", len);
    return;
  }
  u32 flags = ld32(fadt + 112);
  int hw_reduced = (flags >> 20) & 1;
  u64 dsdt = ld64(fadt + 140);
  if (!dsdt) dsdt = ld32(fadt + 40);
  u32 pm1a_cnt = ld32(fadt + 64);
  u8 pm1_cnt_len = ld8(fadt + 89);
  u64 x_pm1a_cnt = ld64(fadt + 172 + 4);
  u8 sleep_space = ld8(fadt + 244);
  u64 sleep_ctl = ld64(fadt + 248);
  bootcheck_line("fadt hw_reduced=");
  fw_put_dec(hw_reduced);
  fw_puts(" pm1a_cnt=");
  fw_put_hex(pm1a_cnt);
  fw_puts(" x_pm1a_cnt=");
  fw_put_hex(x_pm1a_cnt);
  fw_puts(" sleep_control=");
  fw_put_hex(sleep_ctl);
  fw_puts(" space=");
  fw_put_dec(sleep_space);
  fw_putc('\n');
  /* The ACPI 5 sleep-control register is named in either model (guest_abi.h). */
  if (sleep_ctl && (sleep_space != 1 || sleep_ctl != MICROVM_PORT_ACPI_SLEEP_CONTROL))
    bootcheck_fail_hex("FADT sleep control register is not I/O port 0x600:", sleep_ctl);
  if (hw_reduced) {
    if (!sleep_ctl) bootcheck_fail("hardware-reduced FADT without a sleep control register");
  } else {
    /* Fixed hardware: an OS powers off through PM1a_CNT (ACPI 6 §4.8.3.2.1). */
    if (pm1a_cnt != MICROVM_PORT_ACPI_PM1A_CNT) bootcheck_fail_hex("FADT PM1a_CNT_BLK is not the ABI port:", pm1a_cnt);
    if (x_pm1a_cnt && x_pm1a_cnt != pm1a_cnt)
      bootcheck_fail_hex("X_PM1a_CNT_BLK disagrees with PM1a_CNT_BLK:", x_pm1a_cnt);
    if (pm1_cnt_len < 2) bootcheck_fail_hex("PM1_CNT_LEN below 2:", pm1_cnt_len);
  }
  u32 dlen = table_ok(dsdt, SIG4('D', 'S', 'D', 'T'), "DSDT missing at");
  if (dlen) {
    int s5 = aml_has(dsdt, dlen, SIG4('_', 'S', '5', '_'));
    bootcheck_line("dsdt len=");
    fw_put_dec(dlen);
    fw_puts(s5 ? " s5=1\n" : " s5=0\n");
    if (!s5) bootcheck_fail("DSDT has no _S5_");
  }
}

static void check_acpi(u64 bp) {
  u64 rsdp = ld64(bp + BP_ACPI_RSDP_ADDR);
  u64 scanned = 0;
  for (u64 a = 0xe0000; a < 0x100000; a += 16) {
    if (ld64(a) == RSDP_SIG) {
      scanned = a;
      break;
    }
  }
  if (!rsdp) bootcheck_fail("boot_params.acpi_rsdp_addr is 0");
  if (scanned != rsdp) bootcheck_fail_hex("RSDP found by the 0xe0000 scan differs:", scanned);
  if (!rsdp) rsdp = scanned;
  if (!rsdp || rsdp >= FOUR_GIB) {
    bootcheck_fail("no RSDP");
    return;
  }
  if (ld64(rsdp) != RSDP_SIG) {
    bootcheck_fail_hex("no RSDP signature at", rsdp);
    return;
  }
  u8 rev = ld8(rsdp + 15);
  if (checksum(rsdp, 20) != 0) bootcheck_fail("RSDP checksum wrong");
  if (rev < 2 || ld32(rsdp + 20) < 36 || checksum(rsdp, 36) != 0) {
    bootcheck_fail("RSDP is not a valid ACPI 2.0+ RSDP");
    return;
  }
  u64 xsdt = ld64(rsdp + 24);
  u32 xlen = table_ok(xsdt, SIG4('X', 'S', 'D', 'T'), "XSDT missing at");
  if (!xlen) return;
  bootcheck_line("acpi rsdp=");
  fw_put_hex(rsdp);
  fw_puts(" xsdt=");
  fw_put_hex(xsdt);
  fw_puts(" tables=");
  int have_madt = 0, have_fadt = 0;
  for (u32 off = 36; off + 8 <= xlen; off += 8) {
    u64 t = ld64(xsdt + off);
    u32 len = table_ok(t, 0, "XSDT entry not a table at");
    if (!len) continue;
    if (off > 36) fw_putc(',');
    fw_put_bytes((const u8*)(usize)t, 4);
  }
  fw_putc('\n');
  for (u32 off = 36; off + 8 <= xlen; off += 8) {
    u64 t = ld64(xsdt + off);
    if (t == 0 || t >= FOUR_GIB - 36) continue;
    u32 len = ld32(t + 4);
    if (len < 36 || len > ACPI_TABLE_MAX || checksum(t, len) != 0) continue;
    if (ld32(t) == SIG4('A', 'P', 'I', 'C')) {
      have_madt = 1;
      check_madt(t, len);
    } else if (ld32(t) == SIG4('F', 'A', 'C', 'P')) {
      have_fadt = 1;
      check_fadt(t, len);
    }
  }
  if (!have_madt) bootcheck_fail("no MADT");
  if (!have_fadt) bootcheck_fail("no FADT");
}

u64 bootcheck_find_acpi_table(u64 bp, u32 sig, u32* len_out) {
  u64 rsdp = ld64(bp + BP_ACPI_RSDP_ADDR);
  if (!rsdp || rsdp >= FOUR_GIB || ld64(rsdp) != RSDP_SIG || ld8(rsdp + 15) < 2) return 0;
  u64 xsdt = ld64(rsdp + 24);
  if (!xsdt || xsdt >= FOUR_GIB - 36 || ld32(xsdt) != SIG4('X', 'S', 'D', 'T')) return 0;
  u32 xlen = ld32(xsdt + 4);
  if (xlen < 36 || xlen > ACPI_TABLE_MAX) return 0;
  for (u32 off = 36; off + 8 <= xlen; off += 8) {
    u64 t = ld64(xsdt + off);
    if (t == 0 || t >= FOUR_GIB - 36 || ld32(t) != sig) continue;
    u32 len = ld32(t + 4);
    if (len < 36 || len > ACPI_TABLE_MAX || checksum(t, len) != 0) continue;
    *len_out = len;
    return t;
  }
  return 0;
}

/* ---- CPUID ------------------------------------------------------------------------ */

static void check_cpuid(void) {
  struct cpuid_regs l1 = cpuid(1, 0);
  struct cpuid_regs hv = cpuid(0x40000000, 0);
  u32 sig[3] = {hv.ebx, hv.ecx, hv.edx};
  u8 sigb[12];
  memcpy(sigb, sig, 12);
  usize n = 0;
  while (n < 12 && sigb[n]) n++;
  bootcheck_line("hypervisor_bit=");
  fw_put_dec((l1.ecx >> 31) & 1);
  fw_putc('\n');
  bootcheck_line("hv_leaf 0x40000000 sig=");
  fw_put_bytes(sigb, n);
  fw_puts(" eax=");
  fw_put_hex(hv.eax);
  fw_putc('\n');
  if (fw_memcmp(sigb, "KVMKVMKVM\0\0\0", 12) != 0) {
    bootcheck_fail("hypervisor signature is not KVMKVMKVM");
    return;
  }
  if (hv.eax < 0x40000001) bootcheck_fail_hex("hypervisor max leaf too small:", hv.eax);
  struct cpuid_regs f = cpuid(0x40000001, 0);
  bootcheck_line("0x40000001 eax=");
  fw_put_hex(f.eax);
  fw_puts(" edx=");
  fw_put_hex(f.edx);
  fw_putc('\n');
}

/* ---- PCI ------------------------------------------------------------------------- */

static u32 pci_read(u32 dev, u32 off) {
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u | (dev << 11) | (off & 0xfc));
  return inl(MICROVM_PORT_PCI_CONFIG + 4);
}

/* Configuration mechanism #1 the way Linux probes it (arch/x86/pci/direct.c: the
 * address register reads back, and bus 0 has a host bridge), then lists bus 0. */
static void check_pci(void) {
  outl(MICROVM_PORT_PCI_CONFIG, 0x80000000u);
  u32 readback = inl(MICROVM_PORT_PCI_CONFIG);
  u32 devices = 0, host_bridges = 0;
  for (u32 dev = 0; dev < 32; dev++) {
    u32 id = pci_read(dev, 0);
    if ((id & 0xffff) == 0xffff || id == 0) continue;
    u32 class_rev = pci_read(dev, 8);
    devices++;
    if ((class_rev >> 16) == 0x0600) host_bridges++;
    bootcheck_line("pci dev=");
    fw_put_dec(dev);
    fw_puts(" id=");
    fw_put_hex(id);
    fw_puts(" class=");
    fw_put_hex(class_rev >> 8);
    fw_putc('\n');
  }
  bootcheck_line("pci conf1_readback=");
  fw_put_hex(readback);
  fw_puts(" devices=");
  fw_put_dec(devices);
  fw_puts(" host_bridges=");
  fw_put_dec(host_bridges);
  fw_putc('\n');
  if (readback != 0x80000000u) bootcheck_fail_hex("PCI config address register does not read back:", readback);
  if (host_bridges == 0) bootcheck_fail("no PCI host bridge on bus 0 (Linux then finds no config access)");
}

/* ---- virtio-mmio devices on the command line ------------------------------------- */

/* Every "virtio_mmio.device=<size>@<addr>:<irq>" must name a live virtio-mmio v2 device
 * inside the ABI window, on a usable IOAPIC pin, without sharing address or pin. */
static void check_virtio_mmio(u64 bp) {
  u64 p = ld32(bp + HDR_CMD_LINE_PTR) | ((u64)ld32(bp + BP_EXT_CMD_LINE_PTR) << 32);
  if (!p || p >= FOUR_GIB) return;
  static const char key[] = "virtio_mmio.device=";
  const char* c = (const char*)(usize)p;
  u64 addrs[16];
  u32 irqs[16], n = 0;
  for (usize i = 0; i < MICROVM_CMDLINE_MAX && c[i] && n < 16; i++) {
    if (fw_memcmp(c + i, key, sizeof key - 1) != 0) continue;
    const char* s = c + i + sizeof key - 1;
    while (*s && *s != '@' && *s != ' ') s++;
    if (*s != '@') {
      bootcheck_fail("virtio_mmio.device= without @address");
      continue;
    }
    s++;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
    u64 addr = 0;
    for (;; s++) {
      char ch = *s;
      if (ch >= '0' && ch <= '9')
        addr = addr * 16 + (u64)(ch - '0');
      else if (ch >= 'a' && ch <= 'f')
        addr = addr * 16 + (u64)(ch - 'a' + 10);
      else
        break;
    }
    u32 irq = 0;
    if (*s == ':')
      for (s++; *s >= '0' && *s <= '9'; s++) irq = irq * 10 + (u32)(*s - '0');
    u32 magic = 0, version = 0, id = 0;
    int in_window = addr >= MICROVM_VIRTIO_MMIO_BASE && addr < MICROVM_VIRTIO_MMIO_BASE + 0x1000000 && !(addr & 0xfff);
    if (in_window) {
      magic = *(volatile u32*)(usize)addr;
      version = *(volatile u32*)(usize)(addr + 4);
      id = *(volatile u32*)(usize)(addr + 8);
    }
    bootcheck_line("virtio_mmio addr=");
    fw_put_hex(addr);
    fw_puts(" irq=");
    fw_put_dec(irq);
    fw_puts(" magic=");
    fw_put_hex(magic);
    fw_puts(" version=");
    fw_put_dec(version);
    fw_puts(" device_id=");
    fw_put_dec(id);
    fw_putc('\n');
    if (!in_window)
      bootcheck_fail_hex("virtio-mmio device outside the ABI window:", addr);
    else if (magic != 0x74726976 || version != 2 || id == 0)
      bootcheck_fail_hex("no virtio-mmio v2 device at", addr);
    if (irq == 0 || irq >= 24 || irq == 4) bootcheck_fail_hex("virtio-mmio interrupt not a free IOAPIC pin:", irq);
    for (u32 k = 0; k < n; k++) {
      if (addrs[k] == addr) bootcheck_fail_hex("two virtio-mmio devices at", addr);
      if (irqs[k] == irq) bootcheck_fail_hex("two virtio-mmio devices on irq", irq);
    }
    addrs[n] = addr;
    irqs[n++] = irq;
  }
  bootcheck_line("virtio_mmio devices=");
  fw_put_dec(n);
  fw_putc('\n');
}

/* ---- all -------------------------------------------------------------------------- */

void bootcheck_run(u64 bp, u64 image_start, u64 image_end) {
  bootcheck_line("start zero_page=");
  fw_put_hex(bp);
  fw_puts(" image=");
  fw_put_hex(image_start);
  fw_putc('-');
  fw_put_hex(image_end);
  fw_putc('\n');
  if (bp != MICROVM_ZERO_PAGE_ADDR) bootcheck_fail_hex("zero page not at the ABI address:", bp);
  if (bp == 0 || bp >= FOUR_GIB || (bp & 0xfff)) {
    bootcheck_fail("unusable zero page address; stopping");
    return;
  }
  check_cpu_state();
  check_identity_map(image_start, image_end);
  load_e820(bp);
  check_e820();
  if (!in_ram(image_start, image_end - image_start)) bootcheck_fail("own image not inside RAM");
  check_cmdline(bp);
  check_initrd(bp);
  check_setup_data(bp);
  check_acpi(bp);
  check_cpuid();
  check_pci();
  check_virtio_mmio(bp);
  memory_test(image_start, image_end); /* last: it may switch to our own page tables */
}
