/* The C ABI end to end with a firmware guest (label kvm): boots boot_check to power-off
 * through microvm_start/microvm_run, and checks the error contract: negative errno plus a
 * message, configuration refused after start, NULL handles refused.
 *
 *   capi_test FIRMWARE */
#include <errno.h>
#include <fcntl.h>
#include <microvm/microvm.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "capi_test:%d: FAILED: %s\n", __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: capi_test FIRMWARE\n");
    return 2;
  }
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    fprintf(stderr, "capi_test: /dev/kvm is not usable: this test needs KVM\n");
    return 1;
  }
  CHECK(strlen(microvm_version()) > 0);
  CHECK(microvm_create(NULL) == -EINVAL);
  CHECK(microvm_start(NULL) == -EINVAL);
  microvm_destroy(NULL);

  /* A bad configuration: the error comes back from microvm_start with a message. */
  microvm_t* bad;
  CHECK(microvm_create(&bad) == 0);
  CHECK(microvm_set_kernel(bad, argv[1], "bootcheck.exit=poweroff") == 0);
  CHECK(microvm_set_machine(bad, 1, 0) == 0);
  CHECK(microvm_start(bad) == -EINVAL);
  CHECK(strstr(microvm_last_error(bad), "memory") != NULL);
  CHECK(microvm_add_disk(bad, "x.img", NULL, 0) == -EINVAL);
  /* The format's name is checked by the call that takes it, not later by microvm_start. */
  CHECK(microvm_add_disk(bad, "x.img", "vmdk", 0) == -EINVAL);
  CHECK(strstr(microvm_last_error(bad), "vmdk") != NULL);
  CHECK(microvm_add_disk(bad, "x.img", "qcow2", 1) == 0);
  microvm_destroy(bad);

  /* The real thing: boot, power off, reason 0 (MICROVM_EXIT_POWER_OFF). */
  microvm_t* vm;
  CHECK(microvm_create(&vm) == 0);
  int null_fd = open("/dev/null", O_RDWR);
  CHECK(microvm_set_kernel(vm, argv[1], "bootcheck.exit=poweroff") == 0);
  CHECK(microvm_set_machine(vm, 2, 64) == 0);
  CHECK(microvm_set_console(vm, -1, null_fd) == 0);
  CHECK(microvm_start(vm) == 0);
  CHECK(microvm_set_machine(vm, 1, 64) == -EBUSY); /* configuration is over */
  int reason = -1;
  int rc = microvm_run(vm, &reason);
  if (rc != 0) fprintf(stderr, "capi_test: run: %s\n", microvm_last_error(vm));
  CHECK(rc == 0);
  CHECK(reason == MICROVM_EXIT_POWER_OFF);
  CHECK(microvm_run(vm, &reason) == -EBUSY); /* a VM runs once */
  microvm_destroy(vm);
  close(null_fd);

  if (failures == 0) printf("capi_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
