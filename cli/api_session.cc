#include "cli/api_session.h"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <functional>
#include <optional>
#include <thread>
#include <utility>

#include "api/api_server.h"
#include "api/controller.h"
#include "api/router.h"
#include "microvm/sandbox.h"

namespace microvm {
namespace {

// What the main thread is asked to create: a booted Vm, or one restored from a snapshot.
struct StartRequest {
  VmConfig config;
  std::optional<std::pair<std::string, RestoreOptions>> restore;  // state file and options
};

// Runs jobs on a thread of its own, started before the API thread installs its seccomp
// filter: a snapshot opens and writes files and reads KVM state, which the "api" role may
// not (SECURITY.md). The API thread waits for the job, as it waits for InstanceStart.
class FileWorker {
 public:
  FileWorker() : thread_([this] { loop(); }) {}
  ~FileWorker() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Result<void> run(std::function<Result<void>()> job) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !job_; });
    job_ = std::move(job);
    result_.reset();
    cv_.notify_all();
    cv_.wait(lock, [&] { return result_.has_value(); });
    return *std::exchange(result_, std::nullopt);
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return quit_ || job_; });
      if (quit_) return;
      auto job = std::move(job_);
      job_ = nullptr;
      lock.unlock();
      Result<void> r = job();
      lock.lock();
      result_ = std::move(r);
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<Result<void>()> job_;
  std::optional<Result<void>> result_;
  bool quit_ = false;
  std::thread thread_;
};

// Hands InstanceStart from the API thread to the main thread and the result back.
class MainThreadLauncher : public api::VmLauncher {
 public:
  Result<void> start(const VmConfig& config) override { return hand_over(StartRequest{config, std::nullopt}); }
  Result<void> restore(const std::string& state_path, const RestoreOptions& options) override {
    return hand_over(StartRequest{options.host, std::make_pair(state_path, options)});
  }
  Result<void> save_snapshot(const std::string& state_path, const std::string& memory_path) override {
    return with_vm([&](Vm& vm) {
      return worker_.run([&] { return vm.save_snapshot(state_path, memory_path); });
    });
  }

  Result<void> hand_over(StartRequest request) {
    std::unique_lock lock(mu_);
    if (stop_requested_) return fail(EINVAL, "the microVM is stopping");
    request_ = std::move(request);
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

  // Main thread: the next start request, or nullopt when asked to stop (API or signal).
  std::optional<StartRequest> wait_for_start() {
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

  FileWorker worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<StartRequest> request_;
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
  if (!opts.vm.kernel_path.empty() || !opts.restore_dir.empty()) {
    auto created = create_vm(opts);
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
    auto request = launcher.wait_for_start();
    if (!request) {
      launcher.close();
      (*server)->stop();
      std::fprintf(stderr, "microvm: stopped before the microVM was started\n");
      return kExitStopped;
    }
    auto created = request->restore ? Vm::restore_files(request->restore->first, request->restore->second)
                                    : Vm::create(request->config);
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
