// The C ABI (include/microvm/microvm.h) over the C++ API: a handle holds a VmConfig until
// microvm_start(), then the Vm. No exception leaves this file: the C++ API returns errors as
// values, and allocation failure ends the process as anywhere else.
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>

#include "microvm/microvm.h"
#include "microvm/vm.h"

struct microvm_vm {
  microvm::VmConfig config;
  std::unique_ptr<microvm::Vm> vm;
  std::string last_error;
  bool ran = false;
};

namespace {

int error(microvm_t* h, int code, std::string what) {
  h->last_error = std::move(what);
  return -(code > 0 ? code : EINVAL);
}

int error(microvm_t* h, const microvm::Error& e) { return error(h, e.code, e.what); }

int ok(microvm_t* h) {
  h->last_error.clear();
  return 0;
}

// Configuration calls are refused once the machine is built: they would silently do nothing.
bool configurable(microvm_t* h, int* rc) {
  if (!h) {
    *rc = -EINVAL;
    return false;
  }
  if (h->vm) {
    *rc = error(h, EBUSY, "the VM is already started: configure before microvm_start()");
    return false;
  }
  return true;
}

int reason_code(microvm::VmExitReason r) { return microvm::exit_code_for(r); }

}  // namespace

extern "C" {

const char* microvm_version(void) { return MICROVM_VERSION_STRING; }

int microvm_create(microvm_t** out) {
  if (!out) return -EINVAL;
  *out = new microvm_vm();
  (*out)->config.console_escapes = false;  // the embedding program owns the terminal
  return 0;
}

void microvm_destroy(microvm_t* h) {
  if (!h) return;
  if (h->vm) h->vm->stop();
  delete h;
}

const char* microvm_last_error(const microvm_t* h) { return h ? h->last_error.c_str() : "no handle"; }

int microvm_set_kernel(microvm_t* h, const char* kernel_path, const char* cmdline) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  if (!kernel_path || !*kernel_path) return error(h, EINVAL, "kernel path is empty");
  h->config.kernel_path = kernel_path;
  if (cmdline) h->config.cmdline = cmdline;
  return ok(h);
}

int microvm_set_initrd(microvm_t* h, const char* initrd_path) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  h->config.initrd_path = initrd_path ? initrd_path : "";
  return ok(h);
}

int microvm_set_machine(microvm_t* h, unsigned cpus, uint64_t memory_mib) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  if (memory_mib > (UINT64_MAX >> 20)) return error(h, EINVAL, "memory size overflows");
  h->config.cpus = cpus;
  h->config.memory_bytes = memory_mib << 20;
  return ok(h);
}

int microvm_add_disk(microvm_t* h, const char* path, const char* format, int read_only) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  if (!path || !format) return error(h, EINVAL, "disk path and format are required");
  auto disk_format = microvm::disk_format_from_string(format);
  if (!disk_format) return error(h, EINVAL, std::string("disk format '") + format + "': expected raw or qcow2");
  microvm::DiskConfig d;
  d.path = path;
  d.format = *disk_format;
  d.read_only = read_only != 0;
  h->config.disks.push_back(d);
  return ok(h);
}

int microvm_add_net_user(microvm_t* h, const char* hostfwd) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  microvm::NetConfig n;
  n.user = true;
  if (hostfwd && *hostfwd) n.hostfwd.push_back(hostfwd);
  h->config.nets.push_back(n);
  return ok(h);
}

int microvm_add_net_tap(microvm_t* h, const char* tap_name) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  if (!tap_name || !*tap_name) return error(h, EINVAL, "tap name is empty");
  microvm::NetConfig n;
  n.tap = tap_name;
  h->config.nets.push_back(n);
  return ok(h);
}

int microvm_set_console(microvm_t* h, int in_fd, int out_fd) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  h->config.console_in = in_fd;
  h->config.console_out = out_fd;
  return ok(h);
}

int microvm_set_sandbox(microvm_t* h, int enabled) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  h->config.sandbox = enabled != 0;
  return ok(h);
}

int microvm_start(microvm_t* h) {
  int rc;
  if (!configurable(h, &rc)) return rc;
  auto vm = microvm::Vm::create(h->config);
  if (!vm) return error(h, vm.error());
  h->vm = std::move(*vm);
  return ok(h);
}

int microvm_run(microvm_t* h, int* reason) {
  if (!h) return -EINVAL;
  if (!h->vm) return error(h, EBUSY, "microvm_start() first");
  if (h->ran) return error(h, EBUSY, "a VM runs once");
  h->ran = true;
  auto exit = h->vm->run();
  if (!exit) return error(h, exit.error());
  if (reason) *reason = reason_code(exit->reason);
  h->last_error = exit->detail;  // what stopped it, e.g. a crash's register dump
  return 0;
}

int microvm_stop(microvm_t* h) {
  if (!h || !h->vm) return -EINVAL;
  h->vm->stop();
  return 0;
}

int microvm_pause(microvm_t* h) {
  if (!h || !h->vm) return -EINVAL;
  auto r = h->vm->pause();
  return r ? 0 : -(r.error().code > 0 ? r.error().code : EBUSY);
}

int microvm_resume(microvm_t* h) {
  if (!h || !h->vm) return -EINVAL;
  auto r = h->vm->resume();
  return r ? 0 : -(r.error().code > 0 ? r.error().code : EBUSY);
}

int microvm_request_shutdown(microvm_t* h) {
  if (!h || !h->vm) return -EINVAL;
  auto r = h->vm->request_shutdown();
  return r ? 0 : -(r.error().code > 0 ? r.error().code : EBUSY);
}

}  // extern "C"
