/* Interrupt entry without IRET: every vector's stub records the vector, sends the local
 * APIC an EOI (for vectors >= 32) and resumes irq_wait()'s caller on its saved stack.
 * Interrupt gates leave IF clear, so nothing nests. (Avoiding IRET keeps this working
 * on hosts whose instruction emulator handles IRET only partially.) */
  .section .text
  .globl irq_stubs, irq_wait
  .balign 16
irq_stubs:
  .set vec, 0
  .rept 256
  .balign 16
  pushq $vec
  jmp irq_common
  .set vec, vec + 1
  .endr

irq_common:
  pop %rdi
  mov %rdi, irq_vector(%rip)
  cmp $32, %rdi
  jb 1f
  mov $0xfee000b0, %eax          /* local APIC EOI register */
  movl $0, (%rax)
1:
  mov irq_resume_rsp(%rip), %rsp
  jmp *irq_resume_rip(%rip)

/* u64 irq_wait(void): enables interrupts, halts until an interrupt or exception arrives,
 * returns its vector with interrupts disabled again. */
irq_wait:
  push %rbx
  push %rbp
  push %r12
  push %r13
  push %r14
  push %r15
  mov %rsp, irq_resume_rsp(%rip)
  lea 3f(%rip), %rax
  mov %rax, irq_resume_rip(%rip)
2:
  sti
  hlt
  jmp 2b
3:
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbp
  pop %rbx
  mov irq_vector(%rip), %rax
  ret

  .section .data
  .balign 8
irq_vector: .quad 0
irq_resume_rsp: .quad 0
irq_resume_rip: .quad 0
  .section .note.GNU-stack, "", @progbits
