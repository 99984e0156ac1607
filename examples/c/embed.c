/* Embedding microvm from C through its C ABI (microvm/microvm.h): boots one guest with its
 * serial console on this terminal and exits with microvm run's exit code for how it ended.
 *
 *   embed_c KERNEL [CMDLINE [MEMORY_MIB]]
 *
 * Builds against an installed libmicrovm-dev with CMake (find_package(microvm)) or with
 * pkg-config: cc embed.c $(pkg-config --cflags --libs microvm). */
#include <microvm/microvm.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s KERNEL [CMDLINE [MEMORY_MIB]]\n", argv[0]);
    return 2;
  }
  microvm_t* vm;
  if (microvm_create(&vm) != 0) return 1;
  int rc = microvm_set_kernel(vm, argv[1], argc > 2 ? argv[2] : NULL);
  if (rc == 0) rc = microvm_set_machine(vm, 1, argc > 3 ? strtoull(argv[3], NULL, 10) : 256);
  if (rc == 0) rc = microvm_start(vm);
  int reason = 1;
  if (rc == 0) rc = microvm_run(vm, &reason);
  if (rc != 0) {
    fprintf(stderr, "embed_c: %s (error %d)\n", microvm_last_error(vm), rc);
    microvm_destroy(vm);
    return 1;
  }
  printf("embed_c: microvm %s, guest ended with code %d\n", microvm_version(), reason);
  microvm_destroy(vm);
  return reason;
}
