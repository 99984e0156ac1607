/* microvm's C ABI: embed a KVM virtual machine from C, Go (cgo), Rust (bindgen) or Python
 * (ctypes) through one opaque handle. The C++ API (microvm/vm.h) is the same machine.
 *
 *   microvm_t* vm;
 *   if (microvm_create(&vm) != 0) ...
 *   microvm_set_kernel(vm, "vmlinux", "console=ttyS0");
 *   microvm_set_machine(vm, 2, 512);
 *   int rc = microvm_start(vm);          // builds the machine; nothing runs yet
 *   if (rc != 0) fprintf(stderr, "%s\n", microvm_last_error(vm));
 *   int reason;
 *   microvm_run(vm, &reason);            // blocks until the guest stops
 *   microvm_destroy(vm);
 *
 * Every function returning int returns 0 on success or a negative errno (-EINVAL for a bad
 * argument, -EBUSY for a call in the wrong state, ...); microvm_last_error() then holds a
 * message a person can act on. A handle is used from one thread at a time, except
 * microvm_stop(), microvm_pause(), microvm_resume() and microvm_request_shutdown(), which
 * may be called from any thread while microvm_run() blocks. Handles share nothing.
 */
#ifndef MICROVM_MICROVM_H
#define MICROVM_MICROVM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MICROVM_C_API_VERSION 1

typedef struct microvm_vm microvm_t;

/* Why microvm_run() returned; the values are `microvm run`'s exit codes. */
enum microvm_exit_reason {
  MICROVM_EXIT_POWER_OFF = 0,
  MICROVM_EXIT_REBOOT = 3,
  MICROVM_EXIT_CRASH = 4,
  MICROVM_EXIT_STOPPED = 5,
  MICROVM_EXIT_PANICKED = 7,
};

/* "0.3.0 (git rev)": the library's version. */
const char* microvm_version(void);

int microvm_create(microvm_t** out);
void microvm_destroy(microvm_t* vm); /* stops a running VM first; NULL is fine */

/* The last error on this handle, or "" (valid until the next call on the handle). */
const char* microvm_last_error(const microvm_t* vm);

/* Configuration, before microvm_start(). */
int microvm_set_kernel(microvm_t* vm, const char* kernel_path, const char* cmdline /* NULL: default */);
int microvm_set_initrd(microvm_t* vm, const char* initrd_path);
int microvm_set_machine(microvm_t* vm, unsigned cpus, uint64_t memory_mib);
/* format: "raw" or "qcow2" (never guessed); another name is -EINVAL at once. */
int microvm_add_disk(microvm_t* vm, const char* path, const char* format, int read_only);
/* User-mode networking; hostfwd: NULL or "tcp::2222-:22". */
int microvm_add_net_user(microvm_t* vm, const char* hostfwd);
int microvm_add_net_tap(microvm_t* vm, const char* tap_name);
/* The serial console: -1 disconnects either side. Default: 0 and 1. */
int microvm_set_console(microvm_t* vm, int in_fd, int out_fd);
/* Seccomp sandbox of the VM's threads (SECURITY.md): on (1) by default. */
int microvm_set_sandbox(microvm_t* vm, int enabled);

/* Builds the machine from the configuration: every argument is checked here. */
int microvm_start(microvm_t* vm);
/* Runs the guest on this thread until it stops; *reason gets a microvm_exit_reason. */
int microvm_run(microvm_t* vm, int* reason);

/* Control while microvm_run() blocks (any thread). */
int microvm_stop(microvm_t* vm);
int microvm_pause(microvm_t* vm);
int microvm_resume(microvm_t* vm);
int microvm_request_shutdown(microvm_t* vm); /* the ACPI power button */

#ifdef __cplusplus
}
#endif

#endif /* MICROVM_MICROVM_H */
