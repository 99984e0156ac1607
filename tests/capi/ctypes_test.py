#!/usr/bin/env python3
"""The C ABI from Python's ctypes, as a Python embedder would use it: version, the error
contract, and a firmware guest booted to power-off.  ctypes_test.py LIBMICROVM_SO FIRMWARE"""
import ctypes
import errno
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
firmware = sys.argv[2].encode()
lib.microvm_version.restype = ctypes.c_char_p
lib.microvm_last_error.restype = ctypes.c_char_p
lib.microvm_set_machine.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint64]

assert lib.microvm_version(), "empty version"
vm = ctypes.c_void_p()
assert lib.microvm_create(ctypes.byref(vm)) == 0
assert lib.microvm_set_kernel(vm, b"/nonexistent-kernel", None) == 0
rc = lib.microvm_start(vm)
assert rc < 0, rc
assert b"nonexistent-kernel" in lib.microvm_last_error(vm), lib.microvm_last_error(vm)
lib.microvm_destroy(vm)

vm = ctypes.c_void_p()
assert lib.microvm_create(ctypes.byref(vm)) == 0
null = os.open("/dev/null", os.O_RDWR)
assert lib.microvm_set_kernel(vm, firmware, b"bootcheck.exit=poweroff") == 0
assert lib.microvm_set_machine(vm, 1, 64) == 0
assert lib.microvm_set_console(vm, -1, null) == 0
assert lib.microvm_start(vm) == 0, lib.microvm_last_error(vm)
reason = ctypes.c_int(-1)
assert lib.microvm_run(vm, ctypes.byref(reason)) == 0, lib.microvm_last_error(vm)
assert reason.value == 0, reason.value
lib.microvm_destroy(vm)
print("ctypes_test: passed (microvm %s)" % lib.microvm_version().decode())
