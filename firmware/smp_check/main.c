/* smp_check: starts every application processor the MADT lists (INIT-SIPI-SIPI
 * through the local APIC, a real-mode trampoline below 1 MiB, into long mode) and
 * checks that each one runs, reports an APIC ID the MADT names, and that no vCPU
 * started on its own. The APs then halt with interrupts off, so the final power-off
 * also tests that the VMM stops halted vCPUs. Prints "SMPCHECK ..." lines. */
#include "boot_params.h"
#include "checks.h"
#include "microvm/guest_abi.h"

#define TRAMP_PAGE 0x3000ull /* free low RAM: below the zero page, above the GDT */
#define APIC_ID 0x20
#define APIC_SVR 0xf0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310

extern char tramp_start[], tramp_end[], tramp_gdt[], tramp_gdt_base[], tramp_far_offset[], tramp_long[], tramp_cr3[],
    tramp_target[], ap_entry64[];

volatile u32 ap_tickets;
static volatile u32 ap_done;
static volatile u32 ap_ids[SMP_MAX_APS];
u8 ap_stacks[SMP_MAX_APS][4096] __attribute__((aligned(4096), section(".noinit")));

void ap_main(u32 index) {
  struct cpuid_regs r = cpuid(1, 0);
  ap_ids[index] = r.ebx >> 24; /* initial APIC ID */
  __asm__ volatile("lock incl %0" : "+m"(ap_done));
}

static u32 apic_read(u32 reg) { return *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg); }
static void apic_write(u32 reg, u32 v) { *(volatile u32*)(usize)(MICROVM_LAPIC_ADDR + reg) = v; }

static void send_ipi(u32 icr_lo) {
  apic_write(APIC_ICR_HI, 0);
  apic_write(APIC_ICR_LO, icr_lo | (3u << 18)); /* shorthand: all excluding self */
  for (u32 i = 0; i < 100000 && (apic_read(APIC_ICR_LO) & (1u << 12)); i++) {
  }
}

static void fail(const char* s, u64 v) {
  fw_puts("SMPCHECK FAIL ");
  fw_puts(s);
  fw_putc(' ');
  fw_put_hex(v);
  fw_putc('\n');
}

static u32 failures(void);
static u32 nfail;
static u32 failures(void) { return nfail; }
#define FAIL(s, v) (nfail++, fail((s), (v)))

void fw_main(u64 bp) {
  fw_puts("SMPCHECK start\n");
  u32 len = 0;
  u64 madt = bootcheck_find_acpi_table(bp, 'A' | 'P' << 8 | 'I' << 16 | (u32)'C' << 24, &len);
  if (!madt) {
    FAIL("no MADT", 0);
    goto out;
  }
  u32 madt_ids[64];
  u32 n = 0;
  for (u64 p = madt + 44; p + 2 <= madt + len && n < 64;) {
    u8 type = ld8(p), elen = ld8(p + 1);
    if (elen < 2) break;
    if (type == 0 && elen >= 8 && (ld32(p + 4) & 1)) madt_ids[n++] = ld8(p + 3);
    if (type == 9 && elen >= 16 && (ld32(p + 8) & 1)) madt_ids[n++] = ld32(p + 4);
    p += elen;
  }
  u32 bsp_id = apic_read(APIC_ID) >> 24;
  int bsp_listed = 0;
  for (u32 i = 0; i < n; i++) bsp_listed |= madt_ids[i] == bsp_id;
  fw_puts("SMPCHECK madt_cpus=");
  fw_put_dec(n);
  fw_puts(" bsp_apic_id=");
  fw_put_dec(bsp_id);
  fw_putc('\n');
  if (!bsp_listed) FAIL("BSP APIC ID not in the MADT:", bsp_id);
  if (ap_tickets != 0) FAIL("an AP ran before it was started:", ap_tickets);
  u32 want = n ? n - 1 : 0;
  if (want > SMP_MAX_APS) want = SMP_MAX_APS;

  /* Trampoline: copy, then patch its absolute addresses. */
  usize size = (usize)(tramp_end - tramp_start);
  memcpy((void*)(usize)TRAMP_PAGE, tramp_start, size);
  u64 cr3 = read_cr3();
  if (cr3 >= 0x100000000ull) FAIL("CR3 above 4 GiB:", cr3);
  u32 gdt = (u32)(TRAMP_PAGE + (usize)(tramp_gdt - tramp_start));
  u32 lng = (u32)(TRAMP_PAGE + (usize)(tramp_long - tramp_start));
  u64 target = (u64)(usize)ap_entry64;
  memcpy((void*)(usize)(TRAMP_PAGE + (usize)(tramp_gdt_base - tramp_start)), &gdt, 4);
  memcpy((void*)(usize)(TRAMP_PAGE + (usize)(tramp_far_offset - tramp_start)), &lng, 4);
  memcpy((void*)(usize)(TRAMP_PAGE + (usize)(tramp_cr3 - tramp_start)), &cr3, 8);
  memcpy((void*)(usize)(TRAMP_PAGE + (usize)(tramp_target - tramp_start)), &target, 8);

  apic_write(APIC_SVR, 0x1ff);                /* software-enable the local APIC, spurious vector 0xff */
  send_ipi(0x4500);                           /* INIT, level assert */
  send_ipi(0x4600 | (u32)(TRAMP_PAGE >> 12)); /* STARTUP */
  for (u32 i = 0; i < 2000000 && ap_done < want; i++) {
    if (i == 20000) send_ipi(0x4600 | (u32)(TRAMP_PAGE >> 12)); /* second SIPI, as the MP spec says */
  }
  u32 started = ap_done;
  fw_puts("SMPCHECK started=");
  fw_put_dec(started);
  fw_puts(" apic_ids=");
  for (u32 i = 0; i < started && i < SMP_MAX_APS; i++) {
    if (i) fw_putc(',');
    fw_put_dec(ap_ids[i]);
  }
  fw_putc('\n');
  if (started != want) FAIL("APs started, expected MADT count - 1:", started);
  /* Each AP reports a distinct MADT-listed ID other than the BSP's. */
  for (u32 i = 0; i < started && i < SMP_MAX_APS; i++) {
    int listed = 0;
    for (u32 k = 0; k < n; k++) listed |= madt_ids[k] == ap_ids[i];
    if (!listed || ap_ids[i] == bsp_id) FAIL("AP APIC ID not an MADT AP:", ap_ids[i]);
    for (u32 j = 0; j < i; j++) {
      if (ap_ids[j] == ap_ids[i]) FAIL("two APs report the same APIC ID:", ap_ids[i]);
    }
  }
out:
  fw_puts("SMPCHECK done failures=");
  fw_put_dec(failures());
  fw_putc('\n');
}
