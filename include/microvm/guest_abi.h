/* What a guest can rely on from microvm on x86-64, beyond the Linux boot protocol.
 * Plain C so freestanding guest programs under firmware/ include it too. */
#ifndef MICROVM_GUEST_ABI_H
#define MICROVM_GUEST_ABI_H

/* --- Port I/O ------------------------------------------------------------------------ */
#define MICROVM_PORT_COM1 0x3f8       /* 16550 UART, IRQ 4 */
#define MICROVM_PORT_I8042_CMD 0x64   /* write 0xfe: reset (reboot) */
#define MICROVM_PORT_PCI_CONFIG 0xcf8 /* PCI configuration mechanism #1, 0xcf8-0xcff */
#define MICROVM_PORT_RESET_CF9 0xcf9  /* write 0x06/0x0e: reset (reboot) */
/* ACPI registers described in the FADT. Linux powers off through PM1a_CNT (the classic
 * fixed-hardware model, which keeps the legacy PIC/ISA IRQ model stock kernels expect);
 * the FADT also names the ACPI 5 sleep-control register, which firmware may use instead. */
#define MICROVM_PORT_ACPI_PM1A_EVT 0x610      /* 4 bytes: PM1 status (2), PM1 enable (2) */
#define MICROVM_PORT_ACPI_PM1A_CNT 0x614      /* 2 bytes: write (SLP_TYP << 10) | SLP_EN(1 << 13) */
#define MICROVM_PORT_ACPI_SLEEP_CONTROL 0x600 /* write (SLP_TYP << 2) | SLP_EN(0x20) */
#define MICROVM_PORT_ACPI_SLEEP_STATUS 0x601
#define MICROVM_PORT_ACPI_RESET 0x602 /* write MICROVM_ACPI_RESET_VALUE: reboot */
#define MICROVM_ACPI_RESET_VALUE 0x01
#define MICROVM_ACPI_S5_SLP_TYP 5 /* the _S5 package value: power off */
/* Fixed-feature power button (FADT PWR_BUTTON clear): PM1 status/enable bit 8. Pressing it
 * (Vm::request_shutdown) sets PWRBTN_STS (write 1 to clear); while PWRBTN_EN is set too the
 * SCI (IOAPIC pin MICROVM_ACPI_SCI_IRQ, level-triggered) is asserted. */
#define MICROVM_ACPI_PM1_PWRBTN (1u << 8)
#define MICROVM_ACPI_SCI_IRQ 9
/* QEMU's pvpanic ISA device (VmConfig::pvpanic, DSDT _HID "QEMU0001"): reads return the
 * events supported; writing PANICKED ends the VM with VmExitReason::kPanicked, CRASH_LOADED
 * (a kdump kernel takes over) is only logged. */
#define MICROVM_PORT_PVPANIC 0x505
#define MICROVM_PVPANIC_PANICKED 0x01
#define MICROVM_PVPANIC_CRASH_LOADED 0x02
/* Boot-progress marker: a 1-byte write records "marker N reached" with a timestamp
 * (microvm --boot-timer). Guest user space may use it after ioperm(). */
#define MICROVM_PORT_BOOT_MARKER 0x402
/* The same marker for guests whose user space cannot do port I/O: this string written to
 * the serial console (an APC escape sequence, which terminals ignore). */
#define MICROVM_CONSOLE_MARKER "\033_microvm-boot-marker\033\\"

/* --- Guest-physical memory map ------------------------------------------------------- */
#define MICROVM_MPTABLE_ADDR 0x9fc00ULL  /* MP floating pointer (config table at 0xf0000) */
#define MICROVM_ZERO_PAGE_ADDR 0x7000ULL /* struct boot_params */
#define MICROVM_CMDLINE_ADDR 0x20000ULL  /* kernel command line, up to 64 KiB */
#define MICROVM_CMDLINE_MAX 0x10000ULL
#define MICROVM_ACPI_ADDR 0xe0000ULL             /* RSDP and tables, 0xe0000-0xfffff */
#define MICROVM_KERNEL_DEFAULT_ADDR 0x1000000ULL /* bzImage protected-mode kernel load address */
#define MICROVM_PCI_MMIO_BASE 0xc0000000ULL      /* 32-bit PCI BAR window */
#define MICROVM_PCI_MMIO_SIZE 0x10000000ULL
#define MICROVM_VIRTIO_MMIO_BASE 0xd0000000ULL /* virtio-mmio devices, 4 KiB apart */
#define MICROVM_PCI_ECAM_BASE 0xe0000000ULL    /* PCI ECAM, bus 0 only (1 MiB) */
#define MICROVM_IOAPIC_ADDR 0xfec00000ULL
#define MICROVM_LAPIC_ADDR 0xfee00000ULL
#define MICROVM_MMIO_GAP_START 0xc0000000ULL /* RAM above this address moves above 4 GiB */
#define MICROVM_HIGH_RAM_START 0x100000000ULL

#endif
