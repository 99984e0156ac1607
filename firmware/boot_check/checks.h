/* Checks of what the VMM hands a 64-bit boot-protocol kernel; shared by boot_check
 * (ELF) and bzimage_check (bzImage). Output lines start with "BOOTCHECK " and are
 * parsed by tests/integration/firmware_boot_test.cc. */
#ifndef MICROVM_FW_CHECKS_H
#define MICROVM_FW_CHECKS_H

#include "fw.h"

/* Prints "BOOTCHECK FAIL <reason>" and counts the failure. */
void bootcheck_fail(const char* reason);
void bootcheck_fail_hex(const char* reason, u64 value);
/* Starts a "BOOTCHECK " line; the caller finishes it with fw_puts("...\n"). */
void bootcheck_line(const char* text);
u32 bootcheck_failures(void);

/* Runs every check; [image_start, image_end) is this program's memory (not touched
 * by the memory test). */
void bootcheck_run(u64 boot_params, u64 image_start, u64 image_end);

/* Walks the active page tables; returns 1 if [start, end) is identity-mapped
 * (checked at every 2 MiB step and at both ends). */
int bootcheck_identity_mapped(u64 start, u64 end);

/* Address of the checksummed ACPI table `sig` (e.g. 'A'|'P'<<8|'I'<<16|'C'<<24) reached
 * through boot_params.acpi_rsdp_addr and the XSDT, or 0. */
u64 bootcheck_find_acpi_table(u64 boot_params, u32 sig, u32* len);

#endif
