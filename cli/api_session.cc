#include "cli/api_session.h"

#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "api/api_server.h"
#include "api/controller.h"
#include "api/event_hub.h"
#include "api/router.h"
#include "cli/snapshot_dir.h"
#include "microvm/sandbox.h"
#include "vmm/sandbox/jail.h"

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
  // Jailed, the Vm runs in an empty root: the only host directory it can write snapshots to
  // is --snapshot-dir, bound into the jail.
  MainThreadLauncher(bool jailed, std::string snapshot_dir)
      : jailed_(jailed), snapshot_dir_(std::move(snapshot_dir)), worker_(std::make_unique<FileWorker>()) {}
  Result<void> start(const VmConfig& config) override { return hand_over(StartRequest{config, std::nullopt}); }
  Result<void> restore(const std::string& state_path, const RestoreOptions& options) override {
    return hand_over(StartRequest{options.host, std::make_pair(state_path, options)});
  }
  Result<void> save_snapshot(const std::string& state_path, const std::string& memory_path) override {
    if (jailed_ && snapshot_dir_.empty())
      return fail(EPERM,
                  "the microVM runs inside the jail, in an empty root, and was given no --snapshot-dir to "
                  "write snapshots to (start microvm with --snapshot-dir DIR, or --jail off)");
    return with_vm([&](Vm& vm) {
      return worker_->run([&]() -> Result<void> {
        if (snapshot_dir_.empty()) return vm.save_snapshot(state_path, memory_path);
        auto state = TRY(resolve_snapshot_path(snapshot_dir_, state_path, SnapshotFileUse::kCreate));
        auto memory = TRY(resolve_snapshot_path(snapshot_dir_, memory_path, SnapshotFileUse::kCreate));
        if (state == memory) return fail(EINVAL, "snapshot_path and mem_file_path name the same file");
        return vm.save_snapshot(state, memory);
      });
    });
  }

  Result<void> swap_disk(const std::string& drive_id, const std::string& path,
                         std::optional<DiskFormat> format) override {
    if (jailed_)
      return fail(EPERM,
                  "not inside the jail: the microVM runs in an empty root and cannot open host paths "
                  "(start microvm with --jail off to swap drives through the API)");
    return with_vm([&](Vm& vm) { return worker_->run([&] { return vm.swap_disk(drive_id, path, format); }); });
  }

  // On the API thread: the loop does the work; nothing here opens a file or creates an fd.
  Result<void> set_disk_rate_limit(const std::string& drive_id, const RateLimitUpdate& change) override {
    return with_vm([&](Vm& vm) { return vm.set_disk_rate_limit(drive_id, change); });
  }
  Result<void> set_net_rate_limit(const std::string& iface_id, const RateLimitUpdate& rx,
                                  const RateLimitUpdate& tx) override {
    return with_vm([&](Vm& vm) { return vm.set_net_rate_limit(iface_id, rx, tx); });
  }

  // Main thread, once the Vm exists (and the jail closed): the worker gives up what it still
  // held (per-thread capabilities and no_new_privs in the jail) and enters its own filter,
  // before any snapshot request can reach it.
  Result<void> confine_worker(const VmConfig& config, bool sandbox) {
    const bool jailed = jailed_;
    return worker_->run([&config, sandbox, jailed]() -> Result<void> {
      if (jailed) TRY(jail_drop_thread_privileges());
      if (sandbox) TRY(enter_snapshot_thread_sandbox(config));
      return {};
    });
  }

  // Main thread: a snapshot to load, with its paths resolved below --snapshot-dir when there
  // is one (the client's paths are hostile: no '..', no symlink, nothing outside).
  Result<std::pair<std::string, RestoreOptions>> confine_load(std::pair<std::string, RestoreOptions> load) const {
    if (snapshot_dir_.empty()) return load;
    load.first = TRY(resolve_snapshot_path(snapshot_dir_, load.first, SnapshotFileUse::kLoad));
    load.second.memory_path =
        TRY(resolve_snapshot_path(snapshot_dir_, load.second.memory_path, SnapshotFileUse::kLoad));
    return load;
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

  Result<void> pause() override {
    return with_vm([](Vm& vm) { return vm.pause(); });
  }
  Result<void> resume() override {
    return with_vm([](Vm& vm) { return vm.resume(); });
  }
  Result<void> request_shutdown() override {
    return with_vm([](Vm& vm) { return vm.request_shutdown(); });
  }
  std::vector<MetricGroup> metrics() override {
    std::lock_guard lock(mu_);
    return vm_ ? vm_->metrics() : std::vector<MetricGroup>{};
  }
  Result<void> set_balloon(uint64_t bytes) override {
    return with_vm([bytes](Vm& vm) { return vm.set_balloon(bytes); });
  }
  Result<BalloonStats> balloon_stats() const override {
    std::lock_guard lock(mu_);
    if (!vm_) return fail(EINVAL, "no microVM is running");
    return vm_->balloon_stats();
  }

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
    // The API answers as soon as the Vm exists; run() starts it a moment later on the main
    // thread. A pause or power-button request in that gap waits for it (bounded), instead of
    // failing with "not running" on a VM that is about to run.
    for (int i = 0; i < 200 && vm_->info().state == VmState::kCreated; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return f(*vm_);
  }

  const bool jailed_;
  const std::string snapshot_dir_;  // empty: API snapshot paths are not confined (refused jailed)
  std::unique_ptr<FileWorker> worker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<StartRequest> request_;
  std::optional<Result<void>> answer_;
  bool stop_requested_ = false;
  bool closed_ = false;
  Vm* vm_ = nullptr;
};

}  // namespace

int run_with_api(RunOptions& opts, std::chrono::steady_clock::time_point start, std::optional<JailOptions> jail) {
  MainThreadLauncher launcher(jail.has_value(), opts.snapshot_dir);
  auto events = api::EventHub::create();
  if (!events) {
    std::fprintf(stderr, "microvm: %s\n", events.error().what.c_str());
    return kExitError;
  }
  // VM threads hand their events to the hub (a mutex and an eventfd write, allowed in every
  // sandbox role); the API thread streams them to GET /events clients.
  opts.vm.on_event = [hub = events->get()](const VmEvent& e) { hub->publish(e); };
  api::Controller controller(opts.vm, api::InstanceInfo{"anonymous-instance", MICROVM_VERSION}, launcher);
  controller.set_event_hub(events->get());
  if (!opts.metrics_path.empty()) {
    if (auto ok = controller.set_metrics_path(opts.metrics_path); !ok) {
      std::fprintf(stderr, "microvm: --metrics-path: %s\n", ok.error().what.c_str());
      return kExitError;
    }
  }
  const bool sandbox = opts.vm.sandbox;
  api::ApiServerOptions server_options;
  server_options.socket_path = opts.api_sock;
  server_options.counters = &controller.counters();
  server_options.events = events->get();
  // Firecracker flushes metrics every 60 s without being asked, once a file is set.
  server_options.on_tick = [&controller] {
    if (controller.metrics_configured()) (void)controller.flush_metrics();
  };
  // The launcher removes it: the jailed VMM cannot reach the path any more.
  server_options.remove_socket = !jail;
  const bool jailed = jail.has_value();
  if (sandbox || jailed) {
    server_options.enter_sandbox = [sandbox, jailed]() -> Result<void> {
      // The jail's uid change reached this thread too (glibc applies it to every thread);
      // its own capability sets and no_new_privs are per thread.
      if (jailed) TRY(jail_drop_thread_privileges());
      if (sandbox) return enter_api_thread_sandbox();
      return {};
    };
  }
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
    if (jail) {
      if (auto locked = jail_lock_down(*jail); !locked) {
        std::fprintf(stderr, "microvm: %s\n", locked.error().what.c_str());
        return kExitError;
      }
    }
    if (auto confined = launcher.confine_worker(opts.vm, sandbox); !confined) {
      std::fprintf(stderr, "microvm: %s\n", confined.error().what.c_str());
      return kExitError;
    }
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
    if (jail) absolute_vsock_path(request->config);
    if (request->restore) {
      auto confined = launcher.confine_load(std::move(*request->restore));
      if (!confined) {
        launcher.answer(std::unexpected(confined.error()), nullptr);
        continue;
      }
      request->restore = std::move(*confined);
    }
    auto created = request->restore ? Vm::restore_files(request->restore->first, request->restore->second)
                                    : Vm::create(request->config);
    if (!created) {
      // The client gets the reason as a 400; the process keeps serving the API.
      launcher.answer(std::unexpected(created.error()), nullptr);
      continue;
    }
    vm = std::move(*created);
    if (jail) {
      // Only now are the devices known (the network namespace, resolv.conf, CAP_KILL).
      if (request->restore)
        jail_fit_to_restore(*jail, request->restore->second.host);
      else
        jail_fit_to_vm(*jail, request->config);
      if (auto locked = jail_lock_down(*jail); !locked) {
        std::fprintf(stderr, "microvm: %s\n", locked.error().what.c_str());
        launcher.answer(std::unexpected(locked.error()), nullptr);
        launcher.close();
        (*server)->stop();
        return kExitError;
      }
    }
    if (auto confined = launcher.confine_worker(request->config, sandbox); !confined) {
      std::fprintf(stderr, "microvm: %s\n", confined.error().what.c_str());
      launcher.answer(std::unexpected(confined.error()), nullptr);
      launcher.close();
      (*server)->stop();
      return kExitError;
    }
    (*server)->arm_sandbox();
    launcher.answer({}, vm.get());
  }
  vm->set_time_origin(start);
  int code = run_vm(*vm, opts);
  (*server)->stop();
  // After the server thread ended (the controller is single-threaded): the last line in the
  // metrics file has the final counters.
  if (controller.metrics_configured()) (void)controller.flush_metrics();
  launcher.forget_vm();
  launcher.close();
  return code;
}

}  // namespace microvm
