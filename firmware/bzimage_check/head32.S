/* Offset 0 of a bzImage payload is startup_32 (the 32-bit boot protocol). This
 * firmware supports only the 64-bit entry at +0x200: if a VMM jumps here, halt. */
  .section .text.head32, "ax"
  .code32
  .globl fw_head32
fw_head32:
  cli
1:
  hlt
  jmp 1b
  .section .note.GNU-stack, "", @progbits
