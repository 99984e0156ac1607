#include "devices/vhost/vhost_user_worker.h"

#include <pthread.h>

#include <system_error>

namespace microvm {

Result<std::unique_ptr<VhostUserWorker>> VhostUserWorker::start(VhostUserClient client, const std::string& name,
                                                                std::function<Result<void>()> enter_sandbox) {
  auto cancel = EventFd::create();
  if (!cancel) return std::unexpected(cancel.error().context("vhost-user worker"));
  std::unique_ptr<VhostUserWorker> w(new VhostUserWorker(std::move(client), std::move(*cancel)));
  w->client_.set_cancel_fd(w->cancel_fd_.fd());
  try {
    w->thread_ = std::thread([raw = w.get(), shown = name.substr(0, 15), enter = std::move(enter_sandbox)]() mutable {
      // Named by itself (PR_SET_NAME): naming another thread goes through /proc.
      (void)::pthread_setname_np(::pthread_self(), shown.c_str());
      raw->run(std::move(enter));
    });
  } catch (const std::system_error& e) {
    return fail(e.code().value(), std::string("vhost-user worker thread: ") + e.what());
  }
  std::unique_lock lock(w->mu_);
  w->cv_.wait(lock, [&] { return w->started_.has_value(); });
  Result<void> started = *w->started_;
  lock.unlock();
  if (!started) return std::unexpected(started.error().context("vhost-user worker"));  // the thread has ended
  return w;
}

VhostUserWorker::~VhostUserWorker() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cancel_fd_.signal();  // ends a wait for the backend at once
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void VhostUserWorker::submit(Work work, Done done) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(Job{std::move(work), std::move(done)});
  }
  cv_.notify_all();
}

void VhostUserWorker::cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cancel_fd_.signal();
}

void VhostUserWorker::run(std::function<Result<void>()> enter_sandbox) {
  // Filtered before it reads a byte the backend sent.
  Result<void> sandboxed = enter_sandbox ? enter_sandbox() : Result<void>{};
  {
    std::lock_guard lock(mu_);
    started_ = sandboxed;
  }
  cv_.notify_all();
  if (!sandboxed) return;
  for (;;) {
    Job job;
    bool cancelled;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty() || (cancelled_ && !client_.broken()); });
      if (stopping_) break;
      if (jobs_.empty()) {
        client_.close();  // dropped while idle: let the backend see the connection end
        continue;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
      cancelled = cancelled_;
    }
    Result<void> r;
    if (cancelled) {
      client_.close();
      r = fail(ECANCELED, "vhost-user: the backend was dropped");
    } else {
      client_.begin_operation();
      r = job.work(client_);
      client_.end_operation();
      // Whatever went wrong, the backend's state is unknown now: it is not asked again.
      if (!r) client_.close();
    }
    if (job.done) job.done(std::move(r));
  }
  // The backend sees the connection close once its owner's copies (if any) are gone too.
  client_.close();
}

}  // namespace microvm
