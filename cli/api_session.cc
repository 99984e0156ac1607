#include "cli/api_session.h"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>

#include "api/api_server.h"
#include "api/controller.h"
#include "api/router.h"
#include "microvm/sandbox.h"

namespace microvm {
namespace {

// Hands InstanceStart from the API thread to the main thread and the result back.
class MainThreadLauncher : public api::VmLauncher {
 public:
  Result<void> start(const VmConfig& config) override {
    std::unique_lock lock(mu_);
    if (stop_requested_) return fail(EINVAL, "the microVM is stopping");
    request_ = config;
    answer_.reset();
    cv_.notify_all();
    cv_.wait(lock, [&] { return answer_.has_value() || closed_; });
    if (!answer_) return fail(EINVAL, "the microVM is stopping");
    return *std::exchange(answer_, std::nullopt);
  }

  void stop() override {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
    if (vm_) vm_->stop();
    cv_.notify_all();
  }

  Result<void> pause() override { return with_vm([](Vm& vm) { return vm.pause(); }); }
  Result<void> resume() override { return with_vm([](Vm& vm) { return vm.resume(); }); }
  Result<void> request_shutdown() override { return with_vm([](Vm& vm) { return vm.request_shutdown(); }); }
  Result<void> set_balloon(uint64_t bytes) override {
    return with_vm([bytes](Vm& vm) { return vm.set_balloon(bytes); });
  }
  Result<BalloonStats> balloon_stats() const override {
    std::lock_guard lock(mu_);
    if (!vm_) return fail(EINVAL, "no microVM is running");
    return vm_->balloon_stats();
  }

  // Main thread: the next start request, or nullopt when asked to stop (API or signal).
  std::optional<VmConfig> wait_for_start() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stop_requested_ || termination_requested()) return std::nullopt;
      if (request_) return std::exchange(request_, std::nullopt);
      // Signal handlers cannot notify a condition variable: poll their flag.
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
  }

  // Main thread: the outcome of the last request; on success `vm` is what stop() stops.
  void answer(Result<void> result, Vm* vm) {
    std::lock_guard lock(mu_);
    vm_ = vm;
    if (vm_ && stop_requested_) vm_->stop();
    answer_ = std::move(result);
    cv_.notify_all();
  }

  void forget_vm() {
    std::lock_guard lock(mu_);
    vm_ = nullptr;
  }

  // Main thread, before it stops the server: a start request still waiting for an answer
  // (a signal arrived meanwhile) is released, so the server thread can be joined.
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  template <class F>
  Result<void> with_vm(F f) {
    std::lock_guard lock(mu_);
    if (!vm_) return fail(EINVAL, "no microVM is running");
    return f(*vm_);
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<VmConfig> request_;
  std::optional<Result<void>> answer_;
  bool stop_requested_ = false;
  bool closed_ = false;
  Vm* vm_ = nullptr;
};

}  // namespace

int run_with_api(RunOptions& opts, std::chrono::steady_clock::time_point start) {
  MainThreadLauncher launcher;
  api::Controller controller(opts.vm, api::InstanceInfo{"anonymous-instance", MICROVM_VERSION}, launcher);
  const bool sandbox = opts.vm.sandbox;
  api::ApiServerOptions server_options;
  server_options.socket_path = opts.api_sock;
  if (sandbox) server_options.enter_sandbox = [] { return enter_api_thread_sandbox(); };
  auto server = api::ApiServer::create(std::move(server_options),
                                       [&controller](const api::HttpRequest& r) { return api::route(controller, r); });
  if (!server) {
    std::fprintf(stderr, "microvm: %s\n", server.error().what.c_str());
    return kExitError;
  }

  std::unique_ptr<Vm> vm;
  if (!opts.vm.kernel_path.empty()) {
    auto created = Vm::create(opts.vm);
    if (!created) {
      std::fprintf(stderr, "microvm: %s\n", created.error().what.c_str());
      return kExitError;
    }
    vm = std::move(*created);
    controller.mark_running();
    launcher.answer({}, vm.get());
    // Configuration is closed: the server thread never needs to open a path.
    (*server)->arm_sandbox();
  }
  if (auto ok = (*server)->start(); !ok) {
    std::fprintf(stderr, "microvm: %s\n", ok.error().what.c_str());
    return kExitError;
  }
  while (!vm) {
    auto config = launcher.wait_for_start();
    if (!config) {
      launcher.close();
      (*server)->stop();
      std::fprintf(stderr, "microvm: stopped before the microVM was started\n");
      return kExitStopped;
    }
    auto created = Vm::create(*config);
    if (!created) {
      // The client gets the reason as a 400; the process keeps serving the API.
      launcher.answer(std::unexpected(created.error()), nullptr);
      continue;
    }
    vm = std::move(*created);
    (*server)->arm_sandbox();
    launcher.answer({}, vm.get());
  }
  vm->set_time_origin(start);
  int code = run_vm(*vm, opts);
  launcher.forget_vm();
  launcher.close();
  (*server)->stop();
  return code;
}

}  // namespace microvm
