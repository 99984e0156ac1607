/* boot_marker: a static Linux user-space program (no libc) that writes 1 to the
 * microvm boot-marker port, so `microvm run --boot-timer` can time "user space
 * reached". The initramfs /init runs it first thing.
 *
 * It needs ioperm(), i.e. a guest kernel built with CONFIG_X86_IOPL_IOPERM. Without
 * it (the shared test kernel has it off) ioperm fails with ENOSYS; the program then
 * says so on stderr and exits 1 instead of faulting on the OUT instruction. */
#include "microvm/guest_abi.h"

#define SYS_write 1
#define SYS_ioperm 173
#define SYS_exit_group 231

static long syscall3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static void write_str(int fd, const char* s) {
  long n = 0;
  while (s[n]) n++;
  syscall3(SYS_write, fd, (long)s, n);
}

__attribute__((noreturn)) static void exit_group(int code) {
  for (;;) syscall3(SYS_exit_group, code, 0, 0);
}

__attribute__((noreturn, used)) void boot_marker_main(void) {
  long r = syscall3(SYS_ioperm, MICROVM_PORT_BOOT_MARKER, 1, 1);
  if (r != 0) {
    write_str(2, r == -38 ? "boot_marker: ioperm: not supported by this kernel (CONFIG_X86_IOPL_IOPERM)\n"
                          : "boot_marker: ioperm failed\n");
    exit_group(1);
  }
  __asm__ volatile("outb %0, %1" : : "a"((unsigned char)1), "Nd"((unsigned short)MICROVM_PORT_BOOT_MARKER));
  exit_group(0);
}

/* Process entry: the kernel starts us with RSP 16-byte aligned; calling a C function
 * needs RSP % 16 == 8 at its first instruction, which the call provides. */
__asm__(
    ".section .text\n"
    ".globl _start\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  and $-16, %rsp\n"
    "  call boot_marker_main\n"
    "  hlt\n");
