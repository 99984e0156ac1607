/* boot_marker: a static Linux user-space program (no libc) that tells microvm "user space
 * reached", so `microvm run --boot-timer` can time it. The initramfs /init runs it first.
 *
 * With ioperm() (CONFIG_X86_IOPL_IOPERM, on in distro kernels) it writes 1 to the
 * boot-marker port. Kernels without it (the shared test kernel) get the fallback: the
 * marker string MICROVM_CONSOLE_MARKER written to the console, which microvm's UART
 * recognises (an APC escape sequence, which terminals ignore). */
#include "microvm/guest_abi.h"

#define SYS_write 1
#define SYS_open 2
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
    long fd = syscall3(SYS_open, (long)"/dev/console", 1 /* O_WRONLY */, 0);
    if (fd < 0) exit_group(1);
    write_str((int)fd, MICROVM_CONSOLE_MARKER);
    exit_group(0);
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
