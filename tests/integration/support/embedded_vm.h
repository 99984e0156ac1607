#pragma once
// A Vm from the embedding API running a firmware guest on a background thread, with its
// serial console collected line by line: for tests of the control-plane calls
// (pause/resume/info/request_shutdown) that a child process cannot exercise directly.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "microvm/vm.h"

namespace microvm::testing {

class EmbeddedVm {
 public:
  // Creates the VM (console on a pipe, no stdin, no virtio-rng) and starts run().
  static std::unique_ptr<EmbeddedVm> start(VmConfig config, std::string* error);
  // The same for a VM restored from a snapshot directory (options.host gets the console).
  static std::unique_ptr<EmbeddedVm> start_restored(const std::string& dir, RestoreOptions options, std::string* error);
  // The same through Vm::clone_from().
  static std::unique_ptr<EmbeddedVm> start_clone(const std::string& dir, RestoreOptions options, std::string* error);
  // The same through Vm::clone_from(pool), with the console's input on a pipe (send_input()).
  static std::unique_ptr<EmbeddedVm> start_pooled_clone(ClonePool& pool, RestoreOptions options, std::string* error);
  ~EmbeddedVm();

  Vm& vm() { return *vm_; }
  // Console lines so far (CR stripped).
  std::vector<std::string> lines() const;
  // Waits until `pred(lines)` holds or `timeout` passes; returns whether it held.
  bool wait_for(const std::function<bool(const std::vector<std::string>&)>& pred, std::chrono::milliseconds timeout);
  // Waits for run() to return (up to `timeout`); the exit, or nullopt on timeout.
  std::optional<Result<VmExit>> wait_exit(std::chrono::milliseconds timeout);
  std::string log() const;
  // Writes `bytes` to the guest's console input; false without an input pipe or on error.
  bool send_input(std::string_view bytes);

 private:
  EmbeddedVm() = default;
  using Factory = std::function<Result<std::unique_ptr<Vm>>(const VmConfig&)>;
  static std::unique_ptr<EmbeddedVm> launch(VmConfig config, const Factory& create, std::string* error,
                                            bool console_input = false);
  // The restore forms: `options.host` gets the console and log wiring, then `restore` runs.
  using RestoreFactory = std::function<Result<std::unique_ptr<Vm>>(const RestoreOptions&)>;
  static std::unique_ptr<EmbeddedVm> launch_restore(const RestoreOptions& options, const RestoreFactory& restore,
                                                    std::string* error, bool console_input = false);
  void read_console(int fd);

  std::unique_ptr<Vm> vm_;
  int console_write_ = -1;
  int input_read_ = -1;   // the VM's console_in, when launched with input
  int input_write_ = -1;  // send_input() writes here
  std::thread console_thread_;
  std::thread run_thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;      // guarded by mu_
  std::string partial_;                 // console reader only
  std::string log_;                     // guarded by mu_
  std::optional<Result<VmExit>> exit_;  // guarded by mu_
};

}  // namespace microvm::testing
