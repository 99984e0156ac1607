/* Application-processor start-up code. smp_check copies [tramp_start, tramp_end) to a
 * page below 1 MiB, patches the marked fields, and sends INIT-SIPI-SIPI with that
 * page as the vector. An AP starts here in real mode at CS:IP = page:0, enters long
 * mode with the BSP's page tables, and jumps to ap_entry64 in the image. */
  .section .rodata.tramp, "a"
  .globl tramp_start, tramp_end, tramp_gdt, tramp_gdt_base, tramp_far_offset, tramp_long, tramp_cr3, tramp_target
  .code16
tramp_start:
  cli
  mov %cs, %ax
  mov %ax, %ds
  lgdtl tramp_gdt_desc - tramp_start
  mov %cr4, %eax
  or $0x20, %eax                         /* PAE */
  mov %eax, %cr4
  movl tramp_cr3 - tramp_start, %eax
  mov %eax, %cr3
  mov $0xc0000080, %ecx                  /* EFER.LME */
  rdmsr
  or $0x100, %eax
  wrmsr
  mov %cr0, %eax
  or $0x80000001, %eax                   /* PG | PE: long mode, still 16-bit code */
  mov %eax, %cr0
  ljmpl *(tramp_far - tramp_start)
  .code64
tramp_long:
  mov $0x18, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  /* RIP-relative within the copied block stays correct after the copy. */
  jmp *tramp_target(%rip)
  .balign 8
tramp_gdt:
  .quad 0
  .quad 0
  .quad 0x00af9a000000ffff               /* 0x10: 64-bit code */
  .quad 0x00cf92000000ffff               /* 0x18: data */
tramp_gdt_desc:
  .word 4 * 8 - 1
tramp_gdt_base:
  .long 0                                /* patched: copy address of tramp_gdt */
tramp_far:
tramp_far_offset:
  .long 0                                /* patched: copy address of tramp_long */
  .word 0x10
  .balign 8
tramp_cr3:
  .quad 0                                /* patched: the BSP's CR3 (below 4 GiB) */
tramp_target:
  .quad 0                                /* patched: ap_entry64 */
tramp_end:

/* Long-mode AP entry in the image: take a ticket, switch to that AP's stack, run ap_main. */
  .section .text
  .globl ap_entry64
ap_entry64:
  mov $1, %eax
  lock xadd %eax, ap_tickets(%rip)
  mov %eax, %edi
  cmp $SMP_MAX_APS, %eax
  jae 2f
  lea ap_stacks(%rip), %rsp
  inc %eax
  shl $12, %rax
  add %rax, %rsp
  call ap_main
2:
  cli
  hlt
  jmp 2b

  .section .note.GNU-stack, "", @progbits
