/* Tiny runtime for freestanding guest firmware: port I/O, serial output, CPUID,
 * power-off. Everything runs in guest kernel mode, which this project's test host
 * emulates instruction by instruction: keep loops short and use plain integer code. */
#ifndef MICROVM_FW_H
#define MICROVM_FW_H

/* Every symbol is local to the image: keeps -fpie code free of GOT entries (the bzImage
 * payload must run wherever the VMM loads it). */
#pragma GCC visibility push(hidden)

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned long usize;

#define FW_NULL ((void*)0)

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u16 inw(u16 port) {
  u16 v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

struct cpuid_regs {
  u32 eax, ebx, ecx, edx;
};
static inline struct cpuid_regs cpuid(u32 leaf, u32 subleaf) {
  struct cpuid_regs r;
  __asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

static inline u64 read_cr0(void) {
  u64 v;
  __asm__ volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
static inline u64 read_cr3(void) {
  u64 v;
  __asm__ volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
static inline u64 read_cr4(void) {
  u64 v;
  __asm__ volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
static inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

/* Unaligned little-endian loads from guest-physical (identity-mapped) memory. */
static inline u8 ld8(u64 addr) { return *(volatile const u8*)(usize)addr; }
static inline u16 ld16(u64 addr) {
  u16 v;
  __builtin_memcpy(&v, (const void*)(usize)addr, 2);
  return v;
}
static inline u32 ld32(u64 addr) {
  u32 v;
  __builtin_memcpy(&v, (const void*)(usize)addr, 4);
  return v;
}
static inline u64 ld64(u64 addr) {
  u64 v;
  __builtin_memcpy(&v, (const void*)(usize)addr, 8);
  return v;
}

/* Serial console (COM1, polled). */
void fw_putc(char c);
void fw_puts(const char* s);
void fw_put_hex(u64 v); /* 0x-prefixed, no leading zeros */
void fw_put_dec(u64 v);
void fw_put_bytes(const u8* p, usize n); /* printable ASCII, others as '?' */

/* Power off through the ACPI sleep-control port (or, after fw_poweroff_use_pm1a(),
 * through PM1a_CNT the way Linux does); falls back to a reset, then hlt. */
__attribute__((noreturn)) void fw_poweroff(void);
void fw_poweroff_use_pm1a(void);

int fw_memcmp(const void* a, const void* b, usize n);
usize fw_strlen(const char* s);
/* The compiler may emit calls to these for struct copies. */
void* memcpy(void* d, const void* s, usize n);
void* memset(void* d, int c, usize n);
int memcmp(const void* a, const void* b, usize n);

/* Provided by each program: the boot protocol hands over the zero page address (RSI). */
void fw_main(u64 boot_params);

/* Segment selectors and RFLAGS as found at entry (saved by the assembly entry). */
extern u64 fw_entry_cs, fw_entry_ds, fw_entry_ss, fw_entry_rflags;

#pragma GCC visibility pop

#endif
