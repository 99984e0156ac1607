/* Two tiny 64-bit guests, kept as position-independent byte blobs in .rodata. The bench
 * wraps one into an ELF "kernel" at runtime (probe_image.cc) and boots it with
 * `microvm run`: entry is the Linux 64-bit boot protocol (long mode, identity map,
 * interrupts off), which is all they need.
 *
 * probe: times MICROVM_PROBE_ITERS iterations of a two-instruction loop in CPL0 with
 *        RDTSC and prints "PROBE cpl0_loop_tsc=<16 hex digits>" on COM1, then powers
 *        off. The host runs the same loop natively; the ratio tells whether guest kernel
 *        mode runs on the CPU or through an instruction emulator.
 * ticker: forever: writes the boot-marker port and 'T' to COM1, then spins
 *        TICKER_SPIN iterations. A snapshot taken while it runs resumes into this loop, so the
 *        first marker and byte after a restore show the restored guest running.
 * halt:  powers off at once: VMM start-up plus teardown, nothing else. Its bytes mean
 *        the same in 32-bit protected mode, so the ELF also carries a PVH entry note
 *        and QEMU can boot it: it first writes port 0xf4 (QEMU's isa-debug-exit, which
 *        ends QEMU; microvm ignores the port), then microvm's ACPI sleep register.
 */
#define PROBE_ITERS 200000

  .section .rodata, "a"
  .code64

  .globl microvm_bench_probe_blob, microvm_bench_probe_blob_end
microvm_bench_probe_blob:
  cli
  rdtsc
  shl $32, %rdx
  or %rax, %rdx
  mov %rdx, %r9
  mov $PROBE_ITERS, %ecx
1:
  dec %ecx
  jnz 1b
  rdtsc
  shl $32, %rdx
  or %rax, %rdx
  sub %r9, %rdx
  mov %rdx, %r10
  lea probe_msg(%rip), %rsi
  mov $0x3f8, %dx
2:
  movb (%rsi), %al
  test %al, %al
  jz 3f
  out %al, %dx
  inc %rsi
  jmp 2b
3:
  mov $16, %ecx
  lea probe_hex(%rip), %rsi
4:
  rol $4, %r10
  mov %r10, %rax
  and $0xf, %eax
  movb (%rsi,%rax), %al
  out %al, %dx
  dec %ecx
  jnz 4b
  mov $0x0a, %al
  out %al, %dx
  jmp probe_poweroff
probe_msg:
  .asciz "PROBE cpl0_loop_tsc="
probe_hex:
  .ascii "0123456789abcdef"
probe_poweroff:
  /* ACPI sleep-control register (guest_abi.h): SLP_TYP=5 (S5) << 2 | SLP_EN. */
  mov $0x600, %dx
  mov $0x34, %al
  out %al, %dx
  /* Not stopped: i8042 reset, which ends the VMM too (exit code 3). */
  mov $0x64, %dx
  mov $0xfe, %al
  out %al, %dx
5:
  hlt
  jmp 5b
microvm_bench_probe_blob_end:

  .globl microvm_bench_halt_blob, microvm_bench_halt_blob_end
microvm_bench_halt_blob:
  cli
  mov $0xf4, %dx
  mov $0x00, %al
  out %al, %dx
  mov $0x600, %dx
  mov $0x34, %al
  out %al, %dx
  mov $0x64, %dx
  mov $0xfe, %al
  out %al, %dx
6:
  hlt
  jmp 6b
microvm_bench_halt_blob_end:

  .globl microvm_bench_ticker_blob, microvm_bench_ticker_blob_end
microvm_bench_ticker_blob:
  cli
7:
  mov $0x402, %dx   /* MICROVM_PORT_BOOT_MARKER: --boot-timer's "guest boot marker" */
  out %al, %dx
  mov $0x3f8, %dx
  mov $0x54, %al    /* 'T' */
  out %al, %dx
  mov $1000, %ecx
8:
  dec %ecx
  jnz 8b
  jmp 7b
microvm_bench_ticker_blob_end:

  .section .note.GNU-stack, "", @progbits
