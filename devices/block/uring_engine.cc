#include "devices/block/uring_engine.h"

#include <linux/falloc.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <string>

#include "devices/block/file_io.h"

namespace microvm {

namespace {

int32_t clamp_bytes(uint64_t n) { return static_cast<int32_t>(std::min<uint64_t>(n, INT32_MAX)); }

void advance(std::vector<iovec>& iov, size_t n) {
  size_t i = 0;
  while (i < iov.size() && n >= iov[i].iov_len) n -= iov[i++].iov_len;
  iov.erase(iov.begin(), iov.begin() + static_cast<ptrdiff_t>(i));
  if (!iov.empty() && n) {
    iov[0].iov_base = static_cast<char*>(iov[0].iov_base) + n;
    iov[0].iov_len -= n;
  }
}

// Only the opcodes this engine issues are allowed on the ring (defence in depth: a compromised
// event-loop thread cannot use the ring to open files or sockets).
int restrict_ring(int ring_fd) {
  io_uring_restriction res[6];
  std::memset(res, 0, sizeof res);
  const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE};
  unsigned n = 0;
  for (uint8_t op : ops) {
    res[n].opcode = IORING_RESTRICTION_SQE_OP;
    res[n].sqe_op = op;
    ++n;
  }
  // Once the ring is enabled, register calls are restricted too: allow the completion eventfd.
  res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
  res[n].register_op = IORING_REGISTER_EVENTFD;
  ++n;
  // Raw syscalls: Debian's liburing 2.3 declares but does not export the wrappers.
  if (::syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_RESTRICTIONS, res, n) < 0) return errno;
  if (::syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0) return errno;
  return 0;
}

// Parses the leading decimal number of `s`, advancing past it.
std::optional<unsigned> take_number(std::string_view& s) {
  unsigned v = 0;
  size_t i = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 6; ++i) v = v * 10 + static_cast<unsigned>(s[i] - '0');
  if (i == 0) return std::nullopt;
  s.remove_prefix(i);
  return v;
}

}  // namespace

bool uring_can_open_files(std::string_view release) {
  auto major = take_number(release);
  if (!major || release.empty() || release.front() != '.') return true;
  release.remove_prefix(1);
  auto minor = take_number(release);
  if (!minor) return true;
  return *major > 5 || (*major == 5 && *minor >= 6);  // IORING_OP_OPENAT: Linux 5.6
}

Result<std::unique_ptr<UringEngine>> UringEngine::create(const UringOptions& o) {
  auto efd = TRY(EventFd::create(true));
  std::unique_ptr<UringEngine> e(new UringEngine(std::move(efd)));
  unsigned queue_depth = std::clamp(o.queue_depth, 4u, 4096u);
  int rc = io_uring_queue_init(queue_depth, &e->ring_, IORING_SETUP_R_DISABLED);
  int why = rc < 0 ? -rc : 0;  // why the ring is not restricted
  if (rc == 0) {
    e->ring_ready_ = true;
    // The eventfd is registered before the restrictions, which also forbid later registrations.
    rc = io_uring_register_eventfd(&e->ring_, e->done_.fd());
    why = rc < 0 ? -rc : (o.restrict_ring ? o.restrict_ring : restrict_ring)(e->ring_.ring_fd);
    e->restricted_ = why == 0;
    if (!e->restricted_) {
      io_uring_queue_exit(&e->ring_);
      e->ring_ready_ = false;
    }
  }
  if (!e->ring_ready_) {
    // Older kernels lack R_DISABLED (5.10) or restrictions. Before 5.6 a plain ring cannot
    // open files, so it is as safe as a restricted one; later, only without the sandbox.
    rc = io_uring_queue_init(queue_depth, &e->ring_, 0);
    if (rc < 0) return fail_errno(-rc, "io_uring_queue_init");  // no io_uring at all
    e->ring_ready_ = true;
    std::string release(o.kernel_release);
    if (release.empty()) {
      utsname u{};
      if (::uname(&u) == 0) release = u.release;
    }
    bool can_open = uring_can_open_files(release);
    if (!unrestricted_ring_allowed(o.sandboxed, can_open)) {
      if (o.logger)
        o.logger->log(LogLevel::kWarn,
                      "io_uring: ring restrictions unavailable (%s) on Linux %s, whose io_uring can open files; "
                      "refusing an unrestricted ring while the sandbox is on",
                      std::strerror(why), release.c_str());
      return fail(EPERM, "io_uring ring restrictions unavailable (" + std::string(std::strerror(why)) +
                             ") and an unrestricted ring could open files behind the sandbox");
    }
    if (o.logger)
      o.logger->log(LogLevel::kWarn, "io_uring: ring restrictions unavailable (%s); using an unrestricted ring (%s)",
                    std::strerror(why), can_open ? "sandbox off" : "this kernel's io_uring cannot open files");
    rc = io_uring_register_eventfd(&e->ring_, e->done_.fd());
    if (rc < 0) return fail_errno(-rc, "io_uring_register_eventfd");
  }
  e->capacity_ = e->ring_.sq.ring_entries;
  return e;
}

UringEngine::~UringEngine() {
  if (!ring_ready_) return;
  drain();
  io_uring_queue_exit(&ring_);
}

bool UringEngine::prep(Op* op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
    if (!sqe) return false;
  }
  switch (op->kind) {
    case Kind::kRead:
      io_uring_prep_readv(sqe, op->fd, op->iov.data(), static_cast<unsigned>(std::min<size_t>(op->iov.size(), IOV_MAX)),
                          op->offset + op->done);
      break;
    case Kind::kWrite:
      io_uring_prep_writev(sqe, op->fd, op->iov.data(),
                           static_cast<unsigned>(std::min<size_t>(op->iov.size(), IOV_MAX)), op->offset + op->done);
      break;
    case Kind::kSync:
      io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
      break;
    case Kind::kDiscard:
    case Kind::kPunchZero:
      io_uring_prep_fallocate(sqe, op->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op->offset, op->len);
      break;
    case Kind::kZero:
      io_uring_prep_fallocate(sqe, op->fd, FALLOC_FL_ZERO_RANGE, op->offset, op->len);
      break;
  }
  io_uring_sqe_set_data(sqe, op);
  return true;
}

Result<void> UringEngine::queue(std::unique_ptr<Op> op) {
  if (in_flight_ >= capacity_ || !prep(op.get())) return fail(kSubmitBusy, "io_uring submission queue full");
  op.release();  // owned by the ring until its CQE is handled
  ++in_flight_;
  return {};
}

Result<void> UringEngine::read(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  auto op = std::make_unique<Op>(Op{Kind::kRead, fd, tag, offset, iov_total(iov), 0, {iov.begin(), iov.end()}});
  std::erase_if(op->iov, [](const iovec& v) { return v.iov_len == 0; });
  if (op->iov.empty()) {
    done_.push(tag, 0);
    return {};
  }
  return queue(std::move(op));
}

Result<void> UringEngine::write(int fd, uint64_t offset, std::span<const iovec> iov, uint64_t tag) {
  auto op = std::make_unique<Op>(Op{Kind::kWrite, fd, tag, offset, iov_total(iov), 0, {iov.begin(), iov.end()}});
  std::erase_if(op->iov, [](const iovec& v) { return v.iov_len == 0; });
  if (op->iov.empty()) {
    done_.push(tag, 0);
    return {};
  }
  return queue(std::move(op));
}

Result<void> UringEngine::sync(int fd, uint64_t tag) {
  return queue(std::make_unique<Op>(Op{Kind::kSync, fd, tag, 0, 0, 0, {}}));
}

Result<void> UringEngine::discard(int fd, uint64_t offset, uint64_t len, uint64_t tag) {
  if (len == 0) {
    done_.push(tag, 0);
    return {};
  }
  return queue(std::make_unique<Op>(Op{Kind::kDiscard, fd, tag, offset, len, 0, {}}));
}

Result<void> UringEngine::write_zeroes(int fd, uint64_t offset, uint64_t len, bool may_unmap, uint64_t tag) {
  if (len == 0) {
    done_.push(tag, 0);
    return {};
  }
  return queue(std::make_unique<Op>(Op{may_unmap ? Kind::kPunchZero : Kind::kZero, fd, tag, offset, len, 0, {}}));
}

void UringEngine::flush_submissions() { io_uring_submit(&ring_); }

// Completions are queued quietly: handle_cqe() runs inside reap() (whose pop() re-arms the
// eventfd if some are left) or drain() (which signals at its end), so signalling each one
// would only add a write(2) per request.
void UringEngine::handle_cqe(Op* raw, int res) {
  std::unique_ptr<Op> op(raw);
  --in_flight_;
  switch (op->kind) {
    case Kind::kRead:
    case Kind::kWrite:
      if (res == -EINTR || res == -EAGAIN) break;  // transient: resubmitted below as it was
      if (res < 0) return done_.push_quiet(op->tag, res);
      if (res == 0) return done_.push_quiet(op->tag, -EIO);  // EOF or no progress: never a success
      op->done += static_cast<uint64_t>(res);
      advance(op->iov, static_cast<size_t>(res));
      if (op->iov.empty()) return done_.push_quiet(op->tag, clamp_bytes(op->done));
      break;  // short transfer: continue with the rest
    case Kind::kSync:
      return done_.push_quiet(op->tag, res < 0 ? res : 0);
    case Kind::kDiscard:
      // Discard is advisory: a filesystem without hole punching keeps the data, which is allowed.
      return done_.push_quiet(op->tag, (res == -EOPNOTSUPP || res == -EINVAL) ? 0 : std::min(res, 0));
    case Kind::kZero:
    case Kind::kPunchZero:
      if (res == -EOPNOTSUPP || res == -EINVAL) {
        // Rare path (filesystems without fallocate modes): zero synchronously.
        return done_.push_quiet(op->tag, zero_range(op->fd, op->offset, op->len, op->kind == Kind::kPunchZero));
      }
      return done_.push_quiet(op->tag, std::min(res, 0));
  }
  Op* again = op.get();
  if (prep(again)) {
    op.release();
    ++in_flight_;
  } else {
    done_.push_quiet(op->tag, -EAGAIN);
  }
}

void UringEngine::process_cqes() {
  bool resubmitted = false;
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
    auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    size_t before = in_flight_;
    handle_cqe(op, res);
    if (in_flight_ == before) resubmitted = true;  // the op went back on the ring
  }
  if (resubmitted) io_uring_submit(&ring_);
}

size_t UringEngine::reap(std::span<BlockCompletion> out) {
  done_.clear_signal();
  process_cqes();
  return done_.pop(out);
}

void UringEngine::drain() {
  while (in_flight_ > 0) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) break;
    if (io_uring_peek_cqe(&ring_, &cqe) == 0) process_cqes();
  }
  if (!done_.empty()) done_.signal();
}

}  // namespace microvm
