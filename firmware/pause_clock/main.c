/* pause_clock: reads kvmclock in a loop and prints "PAUSECLOCK tick n=<N> ns=<T>" each
 * time guest time has advanced by about 20 ms, so a host test can see progress stop while
 * the VM is paused, resume afterwards, and check that guest time never went backwards and
 * did not jump by the paused interval. Reports "PAUSECLOCK FAIL ..." when the clock goes
 * backwards; powers off after kTicks lines. */
#include "fw.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define TICKS 100000
#define TICK_NS 20000000ull

/* The pvclock structure KVM keeps up to date (one per vCPU; this guest uses the BSP only). */
struct pvclock {
  u32 version;
  u32 pad0;
  u64 tsc_timestamp;
  u64 system_time;
  u32 tsc_to_system_mul;
  signed char tsc_shift;
  u8 flags;
  u8 pad[2];
};
static volatile struct pvclock clock __attribute__((aligned(64)));

static u64 kvmclock_ns(void) {
  u32 v;
  u64 ns;
  do {
    v = clock.version;
    __asm__ volatile("" ::: "memory");
    u64 delta = rdtsc() - clock.tsc_timestamp;
    if (clock.tsc_shift < 0)
      delta >>= -clock.tsc_shift;
    else
      delta <<= clock.tsc_shift;
    ns = clock.system_time + (u64)(((unsigned __int128)delta * clock.tsc_to_system_mul) >> 32);
    __asm__ volatile("" ::: "memory");
  } while ((v & 1) || v != clock.version);
  return ns;
}

static u32 failures;

static void fail(const char* what, u64 a, u64 b) {
  failures++;
  fw_puts("PAUSECLOCK FAIL ");
  fw_puts(what);
  fw_putc(' ');
  fw_put_dec(a);
  fw_putc(' ');
  fw_put_dec(b);
  fw_putc('\n');
}

void fw_main(u64 bp) {
  (void)bp;
  fw_puts("PAUSECLOCK start\n");
  struct cpuid_regs sig = cpuid(0x40000000, 0);
  if (sig.ebx != 0x4b4d564b || sig.ecx != 0x564b4d56 || sig.edx != 0x4d) { /* "KVMKVMKVM\0\0\0" */
    fail("no KVM signature", sig.ebx, sig.ecx);
    return;
  }
  if (!(cpuid(0x40000001, 0).eax & KVM_FEATURE_CLOCKSOURCE2)) {
    fail("no kvmclock", 0, 0);
    return;
  }
  wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)(usize)&clock | 1);
  u64 last = kvmclock_ns();
  u64 next = last + TICK_NS;
  for (u32 n = 0; n < TICKS && failures < 10;) {
    u64 now = kvmclock_ns();
    if (now < last) fail("clock went backwards", last, now);
    last = now;
    if (now < next) continue;
    next = now + TICK_NS;
    fw_puts("PAUSECLOCK tick n=");
    fw_put_dec(n++);
    fw_puts(" ns=");
    fw_put_dec(now);
    fw_putc('\n');
  }
  fw_puts("PAUSECLOCK done failures=");
  fw_put_dec(failures);
  fw_putc('\n');
}
