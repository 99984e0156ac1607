#pragma once
// A thread of one vhost-user device's own that talks to its backend, so the event loop never
// waits for a backend (SECURITY.md, "vhost-user backends"). The device posts request
// sequences (an activation, a ring stop) as jobs; the worker runs them one at a time, in
// order, each under one deadline (VhostUserClient::begin_operation), and reports each result
// through the job's `done` callback. A hung backend so stalls this thread and this device
// only: blk, net, console and the other shares keep being served.
//
// A job that fails leaves the client closed (the backend is treated as gone); later jobs
// fail at once. cancel() drops the backend without waiting for any deadline: the request in
// progress fails at once (a cancel eventfd in its poll), and so does every later one.
//
// Lifetime: the destructor cancels, wakes and joins the thread; jobs still queued are
// dropped without their `done` being called. Every fd a job sends must be owned by the job
// (or outlive the worker): the thread may use it after the submitter forgot it.
//
// Threading: submit() and cancel() from any thread (the event loop); `work` and `done` run
// on the worker thread. Nothing crosses threads but jobs and results (errors as values).
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/event_fd.h"
#include "base/result.h"
#include "devices/vhost/vhost_user_client.h"

namespace microvm {

class VhostUserWorker {
 public:
  using Work = std::function<Result<void>(VhostUserClient&)>;
  // Runs on the worker thread right after `work`; must not block (post to the loop).
  using Done = std::function<void(Result<void>)>;

  // Starts the thread (named `name`, at most 15 bytes shown), which first runs
  // `enter_sandbox` (null: none) on itself and does nothing else if that fails: start()
  // then returns its error.
  [[nodiscard]] static Result<std::unique_ptr<VhostUserWorker>> start(VhostUserClient client, const std::string& name,
                                                                      std::function<Result<void>()> enter_sandbox);
  ~VhostUserWorker();
  VhostUserWorker(const VhostUserWorker&) = delete;
  VhostUserWorker& operator=(const VhostUserWorker&) = delete;

  void submit(Work work, Done done);
  void cancel();

 private:
  VhostUserWorker(VhostUserClient client, EventFd cancel_fd)
      : client_(std::move(client)), cancel_fd_(std::move(cancel_fd)) {}
  void run(std::function<Result<void>()> enter_sandbox);

  VhostUserClient client_;  // the worker thread's once it started
  EventFd cancel_fd_;       // signalled for good by cancel() and the destructor
  std::mutex mu_;
  std::condition_variable cv_;
  struct Job {
    Work work;
    Done done;
  };
  std::deque<Job> jobs_;    // guarded by mu_
  bool stopping_ = false;   // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
  // Set once the thread entered its sandbox or failed to: guarded by mu_.
  std::optional<Result<void>> started_;
  std::thread thread_;
};

}  // namespace microvm
