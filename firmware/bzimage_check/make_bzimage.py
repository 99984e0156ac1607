#!/usr/bin/env python3
"""Packages the bzimage_check payload as a bzImage (Linux boot protocol 2.15).

Layout: a setup area of (setup_sects + 1) * 512 bytes holding the boot sector
signature and the setup header at 0x1f1, then the protected-mode payload, whose
64-bit entry is at payload offset 0x200.

The payload is linked twice, at two different bases. If the two flat images differ,
some code or data holds an absolute address and the payload would break when the
VMM loads it somewhere else: the build fails.
"""
import argparse
import re
import struct
import subprocess
import sys


def flat(objcopy, elf):
    subprocess.run([objcopy, "-O", "binary", elf, elf + ".bin"], check=True)
    with open(elf + ".bin", "rb") as f:
        return f.read()


def symbols(nm, elf):
    syms = {}
    for line in subprocess.run([nm, elf], check=True, stdout=subprocess.PIPE,
                               text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


def header_values(path):
    vals = {}
    for m in re.finditer(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)", open(path).read()):
        vals[m.group(1)] = int(m.group(2), 0)
    return vals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elf-a", required=True)
    ap.add_argument("--elf-b", required=True)
    ap.add_argument("--values", required=True)
    ap.add_argument("--objcopy", default="objcopy")
    ap.add_argument("--nm", default="nm")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    payload = flat(a.objcopy, a.elf_a)
    if payload != flat(a.objcopy, a.elf_b):
        sys.exit("make_bzimage: payload is not position-independent "
                 "(flat images linked at two bases differ)")
    v = header_values(a.values)
    syms = symbols(a.nm, a.elf_a)
    base = syms["__image_start"]
    if syms["fw_entry64"] - base != 0x200:
        sys.exit("make_bzimage: 64-bit entry is not at payload offset 0x200")
    memsize = syms["__image_end"] - base
    init_size = v["PAYLOAD_INIT_SIZE"]
    if memsize > init_size or len(payload) > init_size:
        sys.exit(f"make_bzimage: payload needs {memsize:#x} bytes, raise PAYLOAD_INIT_SIZE")

    sects = v["SETUP_SECTS"]
    setup = bytearray((sects + 1) * 512)

    def put(off, fmt, val):
        struct.pack_into("<" + fmt, setup, off, val)

    version_string = b"microvm bzimage_check\0"
    setup[0x300:0x300 + len(version_string)] = version_string
    put(0x1f1, "B", sects)                       # setup_sects
    put(0x1f4, "I", (len(payload) + 15) // 16)   # syssize, 16-byte units
    put(0x1fe, "H", 0xAA55)                      # boot_flag
    put(0x200, "H", 0x66EB)                      # jump: "jmp +0x66" (real mode, unused)
    put(0x202, "I", 0x53726448)                  # header "HdrS"
    put(0x206, "H", v["SETUP_VERSION"])          # version
    put(0x20c, "H", 0x1000)                      # start_sys_seg
    put(0x20e, "H", 0x300 - 0x200)               # kernel_version string
    put(0x211, "B", 0x01)                        # loadflags: LOADED_HIGH
    put(0x212, "H", 0x8000)                      # setup_move_size
    put(0x214, "I", 0x100000)                    # code32_start
    put(0x22c, "I", 0x7fffffff)                  # initrd_addr_max
    put(0x230, "I", v["KERNEL_ALIGNMENT"])       # kernel_alignment
    put(0x234, "B", 1)                           # relocatable_kernel
    put(0x235, "B", v["KERNEL_ALIGNMENT"].bit_length() - 1)  # min_alignment (log2)
    put(0x236, "H", 0x3)                         # xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G
    put(0x238, "I", 2047)                        # cmdline_size
    put(0x258, "Q", v["PREF_ADDRESS"])           # pref_address
    put(0x260, "I", init_size)                   # init_size
    with open(a.out, "wb") as f:
        f.write(setup)
        f.write(payload)


if __name__ == "__main__":
    main()
