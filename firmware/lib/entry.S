/* 64-bit entry for the Linux x86-64 boot protocol: long mode, paging on, interrupts
 * off, RSI = zero page. No stack is provided, so set one up, zero .bss, record the
 * segment state we were started with (boot_check verifies it), then call fw_main.
 * Position-independent (RIP-relative only) so the bzImage variant can be loaded
 * at any address. */
  .section .text.entry64, "ax"
  .globl fw_entry64
  .code64
fw_entry64:
  cli
  mov %rsi, %r12                 /* callee-saved across the bss clear */
  lea __bss_start(%rip), %rdi
  lea __bss_end(%rip), %rcx
1:
  cmp %rcx, %rdi
  jae 2f
  movq $0, (%rdi)
  add $8, %rdi
  jmp 1b
2:
  lea fw_stack_top(%rip), %rsp
  xor %ebp, %ebp
  xor %eax, %eax
  mov %cs, %ax
  mov %rax, fw_entry_cs(%rip)
  mov %ds, %ax
  mov %rax, fw_entry_ds(%rip)
  mov %ss, %ax
  mov %rax, fw_entry_ss(%rip)
  pushfq
  pop %rax
  mov %rax, fw_entry_rflags(%rip)
  mov %r12, %rdi
  call fw_main
  call fw_poweroff
3:
  cli
  hlt
  jmp 3b

  .section .data
  .balign 8
  .globl fw_entry_cs, fw_entry_ds, fw_entry_ss, fw_entry_rflags
fw_entry_cs: .quad 0
fw_entry_ds: .quad 0
fw_entry_ss: .quad 0
fw_entry_rflags: .quad 0

  .section .noinit, "aw", @nobits
  .balign 16
fw_stack:
  .skip 16384
fw_stack_top:

  .section .note.GNU-stack, "", @progbits
