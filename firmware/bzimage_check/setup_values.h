/* Setup-header values that make_bzimage.py writes and bzimage_check expects to find
 * copied into the zero page. Keep in sync with make_bzimage.py (it parses this file). */
#ifndef MICROVM_FW_SETUP_VALUES_H
#define MICROVM_FW_SETUP_VALUES_H

#define SETUP_VERSION 0x020f /* boot protocol 2.15 */
#define SETUP_SECTS 3        /* deliberately not 4 (the "0 means 4" default) */
#define KERNEL_ALIGNMENT 0x200000
#define PREF_ADDRESS 0x1000000
/* The payload's memory size incl. .bss, rounded to 4 KiB; the build checks it. */
#define PAYLOAD_INIT_SIZE 0x20000

#endif
