#pragma once
// `microvm run --shutdown-timeout N`: on SIGTERM, press the guest's ACPI power button
// (Vm::request_shutdown) and stop the VM only if it has not powered off N seconds later.
// A second SIGTERM stops at once. The signal handler only writes a byte to a pipe; a
// watcher thread does the rest (request_shutdown is not async-signal-safe).
#include <chrono>
#include <memory>
#include <thread>

#include "base/fd.h"
#include "microvm/result.h"
#include "microvm/vm.h"

namespace microvm {

class GracefulShutdown {
 public:
  [[nodiscard]] static Result<std::unique_ptr<GracefulShutdown>> start(Vm& vm, std::chrono::seconds timeout);
  // Call once run() has returned: ends the watcher.
  ~GracefulShutdown();

  // From a signal handler: asks for a graceful shutdown (or, the second time, a stop).
  // Async-signal-safe. Returns false when no GracefulShutdown is active.
  static bool notify_from_signal();

 private:
  GracefulShutdown(Vm& vm, std::chrono::seconds timeout, Fd read, Fd write)
      : vm_(vm), timeout_(timeout), read_(std::move(read)), write_(std::move(write)) {}
  void watch();

  Vm& vm_;
  std::chrono::seconds timeout_;
  Fd read_;
  Fd write_;
  std::thread thread_;
};

}  // namespace microvm
