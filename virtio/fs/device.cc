#include "virtio/fs/device.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdarg>
#include <cstring>

#include "devices/vhost/vhost_user_protocol.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

// Ring features the backend implements and we may pass through: the transport does not care
// about ring layout details, virtiofsd does. Everything else (packed rings, ACCESS_PLATFORM,
// device-specific bits like NOTIFICATION) stays off.
constexpr uint64_t kPassThrough =
    feature_bit(VIRTIO_F_VERSION_1) | feature_bit(VIRTIO_F_EVENT_IDX) | feature_bit(VIRTIO_F_INDIRECT_DESC);

// §2.7: sizes of the split-ring parts for a queue of `n` entries (with EVENT_IDX's extra u16).
uint64_t desc_bytes(uint16_t n) { return 16ull * n; }
uint64_t avail_bytes(uint16_t n) { return 6ull + 2ull * n; }
uint64_t used_bytes(uint16_t n) { return 6ull + 8ull * n; }

Result<uint64_t> host_address(const GuestMemory& mem, GuestAddress a, uint64_t len, const char* what) {
  auto span = mem.translate(a, len);
  if (!span) return std::unexpected(span.error().context(what));
  return reinterpret_cast<uint64_t>(span->data());
}

Result<Fd> duplicate(int fd, const char* what) {
  Fd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) return fail_errno(std::string("virtio-fs: copying the ") + what + " fd");
  return copy;
}

}  // namespace

Result<std::unique_ptr<FsDevice>> FsDevice::create(FsOptions o) {
  if (o.tag.empty() || o.tag.size() > kFsTagSize)
    return fail(EINVAL, "virtio-fs: tag must be 1 to 36 bytes: '" + o.tag + "'");
  if (o.num_request_queues == 0 || o.num_request_queues > 16) return fail(EINVAL, "virtio-fs: 1 to 16 request queues");
  if (o.queue_size == 0 || o.queue_size > 1024 || (o.queue_size & (o.queue_size - 1)))
    return fail(EINVAL, "virtio-fs: queue size must be a power of 2 up to 1024");
  auto client = VhostUserClient::connect(o.socket_path, o.reply_timeout);
  if (!client) return std::unexpected(client.error().context("share " + o.tag));
  // The handshake runs here, on the thread building the machine, before the VM runs.
  client->begin_operation();
  auto features = client->negotiate();
  client->end_operation();
  if (!features) return std::unexpected(features.error().context("share " + o.tag + ": vhost-user handshake"));
  if (!has_feature(*features, VIRTIO_F_VERSION_1))
    return fail(EPROTO, "share " + o.tag + ": the vhost-user backend does not offer VIRTIO_F_VERSION_1");
  // The loop watches its own copy of the connection for the backend hanging up, so the
  // worker may close its copy (a failed sequence) whenever it must.
  auto watch = duplicate(client->socket_fd(), "vhost-user socket");
  if (!watch) return std::unexpected(watch.error().context("share " + o.tag));
  auto worker = VhostUserWorker::start(std::move(*client), "vhost-" + o.tag, o.enter_sandbox);
  if (!worker) return std::unexpected(worker.error().context("share " + o.tag));
  // Connected: virtiofsd never accepts a second connection, so its socket path has served
  // its purpose. Removing it now leaves nothing behind even if we are SIGKILLed later.
  if (o.process) o.process->remove_runtime_dir();
  std::unique_ptr<FsDevice> d(new FsDevice(std::move(o), *features, std::move(*watch)));
  d->offered_features_ = *features & kPassThrough;
  d->worker_ = std::move(*worker);
  return d;
}

FsDevice::FsDevice(FsOptions options, uint64_t backend_features, Fd hangup_watch)
    : options_(std::move(options)),
      log_prefix_("share " + options_.tag),
      throttled_(options_.logger, log_prefix_.c_str()),
      backend_features_(backend_features),
      hangup_watch_(std::move(hangup_watch)) {}

FsDevice::~FsDevice() {
  // The worker first: it drops the connection (virtiofsd exits on its own) and reports to
  // nothing once joined. Then the loop registrations, then the owned process is stopped
  // (SIGTERM, SIGKILL) and reaped with the other members.
  alive_.reset();
  worker_.reset();
  active_.reset();
}

void FsDevice::log(LogLevel level, const char* fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  throttled_.vlog(level, fmt, ap);
  va_end(ap);
}

void FsDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
  // struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; } (§5.11.4)
  std::byte config[kFsTagSize + 4] = {};
  std::memcpy(config, options_.tag.data(), options_.tag.size());
  uint32_t n = options_.num_request_queues;
  for (int i = 0; i < 4; ++i) config[kFsTagSize + i] = std::byte(n >> (8 * i));
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = offset < sizeof config && i < sizeof config - offset ? config[offset + i] : std::byte{0};
}

Result<void> FsDevice::activate(ActivationContext ctx) {
  if (active_) return fail(EBUSY, "virtio-fs: already active");
  if (ctx.queues.size() != num_queues()) return fail(EINVAL, "virtio-fs: wrong number of queues");
  acked_features_ = ctx.features & offered_features_;
  needs_reset_.store(false, std::memory_order_release);
  loop_ = &ctx.loop;
  auto plan = plan_activation(ctx);
  if (!plan) {
    log(LogLevel::kError, "activation failed: %s", plan.error().what.c_str());
    return std::unexpected(plan.error().context("share " + options_.tag));
  }
  active_.emplace(Active{++next_generation_,
                         &ctx.interrupt,
                         &ctx.memory,
                         &ctx.loop,
                         acked_features_,
                         {},
                         {},
                         {},
                         {},
                         {},
                         nullptr,
                         nullptr});
  for (uint16_t i = 0; i < ctx.queues.size(); ++i)
    if (ctx.queues[i].ready) active_->rings.push_back({i, ctx.queues[i]});
  if (!backend_connected()) {
    // The backend is gone: the driver gets failing requests rather than a device that
    // never answers.
    backend_failed("the vhost-user backend is gone", /*connection_gone=*/true);
    return {};
  }
  if (auto watched = watch_backend(ctx, *plan); !watched) {
    log(LogLevel::kError, "activation failed: %s", watched.error().what.c_str());
    active_.reset();
    return std::unexpected(watched.error().context("share " + options_.tag));
  }
  active_->plan = std::make_shared<FsActivation>(std::move(*plan));
  pump();
  return {};
}

Result<FsActivation> FsDevice::plan_activation(const ActivationContext& ctx) const {
  using vhost_user::kFeatureProtocolFeatures;
  FsActivation plan;
  // Bit 30 must stay set in SET_FEATURES when protocol features were negotiated, or the
  // backend enables every ring at once instead of waiting for SET_VRING_ENABLE.
  plan.features = acked_features_ | (backend_features_ & kFeatureProtocolFeatures);
  plan.enable_rings = (backend_features_ & kFeatureProtocolFeatures) != 0;
  for (const GuestRegion& r : ctx.memory.regions()) {
    if (r.fd < 0) return fail(EINVAL, "guest RAM is not file-backed; vhost-user needs shared memory");
    plan.regions.push_back({r.guest_base.raw(), r.size, reinterpret_cast<uint64_t>(r.host), r.fd, r.fd_offset});
  }
  if (plan.regions.empty() || plan.regions.size() > vhost_user::kMaxMemRegions)
    return fail(EINVAL, "vhost-user needs 1 to 8 guest RAM regions");
  for (uint16_t i = 0; i < ctx.queues.size(); ++i) {
    const QueueConfig& q = ctx.queues[i];
    if (!q.ready) continue;  // §5.11.2: the driver may use fewer request queues
    // §2.7: Queue Size is a power of 2, at most what we offered.
    if (q.size == 0 || q.size > options_.queue_size || (q.size & (q.size - 1)))
      return fail(EINVAL, "queue " + std::to_string(i) + ": bad size " + std::to_string(q.size));
    if (q.kick_fd < 0) return fail(EINVAL, "queue " + std::to_string(i) + " has no kick fd");
    // The backend gets our virtual addresses; each ring must lie inside one RAM region, or
    // virtiofsd would fail to translate it (or worse, we would hand it a wrong pointer).
    FsRingSetup ring;
    ring.index = i;
    ring.size = q.size;
    ring.addrs.desc = TRY(host_address(ctx.memory, q.desc, desc_bytes(q.size), "descriptor table"));
    ring.addrs.avail = TRY(host_address(ctx.memory, q.driver, avail_bytes(q.size), "available ring"));
    ring.addrs.used = TRY(host_address(ctx.memory, q.device, used_bytes(q.size), "used ring"));
    // The transport owns the doorbell and may close it before the worker sends it.
    ring.kick = TRY(duplicate(q.kick_fd, "doorbell"));
    plan.rings.push_back(std::move(ring));
  }
  if (plan.rings.empty()) return fail(EINVAL, "no queue is enabled");
  return plan;
}

Result<void> FsDevice::watch_backend(const ActivationContext& ctx, FsActivation& plan) {
  Active& a = *active_;
  for (FsRingSetup& ring : plan.rings) {
    const uint16_t i = ring.index;
    auto call = TRY(EventFd::create());
    int call_fd = call.fd();
    ring.call = TRY(duplicate(call_fd, "call eventfd"));
    a.calls.push_back(std::move(call));
    auto reg = LoopRegistration::add(ctx.loop, call_fd, EPOLLIN, [this, i, call_fd](uint32_t) {
      drain_eventfd(call_fd);
      if (!active_) return;
      interrupts_.fetch_add(1, std::memory_order_relaxed);
      active_->interrupt->notify_queue(i);
    });
    if (!reg) return std::unexpected(reg.error().context("registering the call fd"));
    a.registrations.push_back(std::move(*reg));
    a.started.push_back(i);
  }
  // The backend's end of the socket closing means virtiofsd is gone: notice it at once
  // rather than at the next reset. Our own virtiofsd's exit is seen even sooner on its pidfd
  // (its sandboxed child may hold the socket a moment longer).
  auto hup = LoopRegistration::add(ctx.loop, hangup_watch_.get(), EPOLLRDHUP, [this](uint32_t) {
    backend_failed("its vhost-user socket hung up", /*connection_gone=*/true);
  });
  if (!hup) return std::unexpected(hup.error().context("watching the backend socket"));
  a.registrations.push_back(std::move(*hup));
  if (options_.process && options_.process->pidfd() >= 0) {
    auto exited = LoopRegistration::add(ctx.loop, options_.process->pidfd(), EPOLLIN, [this](uint32_t) {
      backend_failed("noticed on its pidfd", /*connection_gone=*/false);
    });
    if (!exited) return std::unexpected(exited.error().context("watching virtiofsd"));
    a.exit_watch = std::move(*exited);
  }
  return {};
}

void FsDevice::pump() {
  if (job_in_flight_ || !backend_connected()) return;
  if (!backend_rings_.empty() && (!active_ || active_->generation != backend_rings_generation_)) {
    // The driver reset (and maybe activated again) while the backend still runs the old rings.
    std::vector<uint16_t> rings = std::move(backend_rings_);
    backend_rings_.clear();
    submit([rings](VhostUserClient& c) { return run_stop(c, rings); }, backend_rings_generation_, false);
    return;
  }
  if (active_ && active_->plan) {
    std::shared_ptr<FsActivation> plan = std::move(active_->plan);
    for (const FsRingSetup& r : plan->rings) backend_rings_.push_back(r.index);
    backend_rings_generation_ = active_->generation;
    submit([plan](VhostUserClient& c) { return run_activation(c, *plan); }, active_->generation, true);
  }
}

void FsDevice::submit(VhostUserWorker::Work work, uint64_t generation, bool activation) {
  job_in_flight_ = true;
  stop_in_flight_ = !activation;
  EventLoop* loop = loop_;
  std::weak_ptr<int> alive = alive_;
  worker_->submit(std::move(work), [this, alive, loop, generation, activation](Result<void> r) {
    // On the worker thread: the verdict goes to the loop, which owns every piece of state.
    loop->post([this, alive, generation, activation, r = std::move(r)] {
      if (alive.expired()) return;
      sequence_done(generation, activation, r);
    });
  });
}

void FsDevice::sequence_done(uint64_t generation, bool activation, const Result<void>& r) {
  job_in_flight_ = false;
  stop_in_flight_ = false;
  if (!r) {
    if (backend_connected()) {
      if (activation && active_ && active_->generation == generation)
        log(LogLevel::kError, "activation failed: %s", r.error().what.c_str());
      backend_failed(r.error().what, /*connection_gone=*/true);
    }
    update_reset_pending();
    return;
  }
  if (activation && active_ && active_->generation == generation)
    log(LogLevel::kDebug, "backend serving %zu queue(s)", active_->started.size());
  pump();
  update_reset_pending();
}

void FsDevice::update_reset_pending() {
  // A stop is owed while the backend runs rings of an activation the driver has since reset.
  bool owed = !backend_rings_.empty() && (!active_ || active_->generation != backend_rings_generation_);
  // Once the connection is gone nothing more is said to the backend: the reset completes
  // (the existing dead-backend path: NEEDS_RESET, ENOTCONN replies).
  reset_pending_.store(backend_connected() && (owed || stop_in_flight_), std::memory_order_release);
}

void FsDevice::backend_failed(const std::string& why, bool connection_gone) {
  if (active_ && active_->orphaned) return;
  backend_lost_.store(true, std::memory_order_relaxed);
  // Runs on the sandboxed event-loop thread: only non-blocking reaping (wait4 WNOHANG) and
  // sleeps here, no signals. A backend that hung up is usually exiting: give it a moment to
  // become reapable, so the log line can say how it ended. Bounded, once per failure.
  std::string how =
      options_.process ? options_.process->exit_description(std::chrono::milliseconds(200)) : std::string();
  if (!failure_logged_) {
    failure_logged_ = true;
    std::string what = options_.process ? "virtiofsd exited (" +
                                              (how.empty() ? std::string("still running, connection closed") : how) +
                                              ", " + why + ")"
                                        : "vhost-user backend gone (" + why + ")";
    log(LogLevel::kError, "%s", what.c_str());
    if (options_.on_backend_failed) options_.on_backend_failed(what);
  }
  if (!needs_reset_.exchange(true, std::memory_order_acq_rel) && active_) active_->interrupt->notify_config();
  if (!connection_gone) {
    // The process we started is gone, but the connection lives while any process it forked
    // holds it (the C virtiofsd's sandboxed child, which follows by its parent-death signal).
    // The rings are only taken over once the socket hangs up: before that, the backend may
    // still complete requests.
    if (active_) active_->exit_watch.reset();
    return;
  }
  // Unregister before the socket fd is closed (epoll would keep reporting it otherwise), then
  // drop the connection: nothing more can be said to a backend that hung up.
  if (active_) {
    active_->registrations.clear();
    active_->exit_watch.reset();
    active_->calls.clear();
    active_->plan.reset();
  }
  connection_gone_.store(true, std::memory_order_release);
  hangup_watch_.reset();
  backend_rings_.clear();
  worker_->cancel();  // a sequence in progress fails at once; none is sent again
  update_reset_pending();
  if (!active_) return;
  auto orphaned = OrphanedQueues::adopt(*active_->memory, *active_->interrupt, *active_->loop, active_->features,
                                        active_->rings, options_.logger, options_.tag);
  if (orphaned) {
    active_->orphaned = std::move(*orphaned);
    log(LogLevel::kError, "requests on it now fail with ENOTCONN (device needs reset); the VM keeps running");
  } else {
    log(LogLevel::kError, "its queues cannot be taken over (%s); the share is gone, the VM keeps running",
        orphaned.error().what.c_str());
  }
}

void FsDevice::reset() {
  if (!active_) return;
  if (active_->orphaned) failed_ += active_->orphaned->failed_requests();
  active_.reset();
  acked_features_ = 0;
  needs_reset_.store(false, std::memory_order_release);
  // The backend stops the old rings (GET_VRING_BASE) on the worker, after whatever sequence
  // it is running; the loop does not wait for it, the driver does (reset_pending()).
  pump();
  update_reset_pending();
}

}  // namespace microvm
