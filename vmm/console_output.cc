#include "vmm/console_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace microvm {

Result<std::unique_ptr<ConsoleOutput>> ConsoleOutput::create(int fd, size_t capacity) {
  auto wake = TRY(EventFd::create(true));
  std::unique_ptr<ConsoleOutput> out(new ConsoleOutput(fd, std::max<size_t>(capacity, 1), std::move(wake)));
  if (fd >= 0) TRY(out->open_nonblocking(fd));
  return out;
}

Result<void> ConsoleOutput::open_nonblocking(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail_errno("console output: fstat");
  if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
    // Files never make a writer wait for a reader, and epoll refuses them; reopening would
    // also lose the caller's offset and O_APPEND.
    pollable_ = false;
    return {};
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  int reopened = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (reopened >= 0) {
    owned_ = Fd(reopened);
    fd_ = reopened;
    return {};
  }
  // Sockets cannot be reopened (and /proc may be missing): switch the shared description,
  // and switch it back when done.
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return fail_errno("console output: F_GETFL");
  if (!(flags & O_NONBLOCK)) {
    if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return fail_errno("console output: F_SETFL");
    restore_flags_ = flags;
  }
  return {};
}

ConsoleOutput::~ConsoleOutput() {
  detach();
  if (restore_flags_) ::fcntl(fd_, F_SETFL, *restore_flags_);
}

Result<void> ConsoleOutput::attach(EventLoop& loop) {
  if (fd_ < 0) return {};
  TRY(loop.add(wake_.fd(), EPOLLIN, [this](uint32_t) { on_wake(); }));
  loop_ = &loop;
  on_wake();  // bytes queued before attach
  return {};
}

void ConsoleOutput::detach() {
  if (!loop_) return;
  if (waiting_writable_) loop_->remove(fd_);
  waiting_writable_ = false;
  loop_->remove(wake_.fd());
  loop_ = nullptr;
}

void ConsoleOutput::write(std::span<const uint8_t> bytes) {
  if (bytes.empty() || fd_ < 0) return;
  size_t taken;
  {
    std::lock_guard lock(mu_);
    taken = std::min(bytes.size(), ring_.size() - size_);
    size_t tail = (head_ + size_) % ring_.size();
    size_t first = std::min(taken, ring_.size() - tail);
    std::copy_n(bytes.begin(), first, ring_.begin() + static_cast<ptrdiff_t>(tail));
    std::copy_n(bytes.begin() + static_cast<ptrdiff_t>(first), taken - first, ring_.begin());
    size_ += taken;
  }
  if (taken < bytes.size()) dropped_.fetch_add(bytes.size() - taken, std::memory_order_relaxed);
  // An eventfd write never blocks (the counter cannot reach its limit at one per batch).
  if (taken && !wake_pending_.exchange(true, std::memory_order_acq_rel)) wake_.signal();
}

size_t ConsoleOutput::buffered_bytes() const {
  std::lock_guard lock(mu_);
  return size_;
}

size_t ConsoleOutput::peek(std::span<uint8_t> out) const {
  std::lock_guard lock(mu_);
  size_t n = std::min(out.size(), size_);
  size_t first = std::min(n, ring_.size() - head_);
  std::copy_n(ring_.begin() + static_cast<ptrdiff_t>(head_), first, out.begin());
  std::copy_n(ring_.begin(), n - first, out.begin() + static_cast<ptrdiff_t>(first));
  return n;
}

void ConsoleOutput::consume(size_t n) {
  std::lock_guard lock(mu_);
  n = std::min(n, size_);
  head_ = (head_ + n) % ring_.size();
  size_ -= n;
}

bool ConsoleOutput::drain_once() {
  uint8_t buf[16 * 1024];
  for (;;) {
    size_t n = peek(buf);
    if (n == 0) return true;
    if (broken_) {
      consume(n);
      dropped_.fetch_add(n, std::memory_order_relaxed);
      continue;
    }
    ssize_t w = ::write(fd_, buf, n);
    if (w > 0) {
      consume(static_cast<size_t>(w));
      written_.fetch_add(static_cast<uint64_t>(w), std::memory_order_relaxed);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return false;
    // EPIPE, EIO, a zero-length write: nobody will take these bytes. Drop them from now on
    // rather than spin.
    broken_ = true;
  }
}

void ConsoleOutput::on_wake() {
  // The eventfd is reset first and the flag cleared after it; in the other order a write()
  // landing between the two would see the flag clear, signal, and have that signal eaten by
  // this drain, leaving the flag set with no wake-up pending: every later write() would then
  // skip signalling and the console would go silent for good. In this order, a write() that
  // saw the flag set queued its bytes before the clear below, so the peek in drain_once()
  // sees them; one that sees it clear signals an eventfd nobody resets before the next
  // on_wake().
  (void)wake_.drain();
  wake_pending_.store(false, std::memory_order_seq_cst);
  if (waiting_writable_) return;  // EPOLLOUT will come
  if (drain_once() || !pollable_ || !loop_) return;
  if (loop_->add(fd_, EPOLLOUT, [this](uint32_t ev) { on_writable(ev); }))
    waiting_writable_ = true;
  else
    broken_ = true;  // cannot wait for the reader: drop rather than spin
}

void ConsoleOutput::on_writable(uint32_t) {
  if (!drain_once()) return;  // still full; wait for the next EPOLLOUT
  loop_->remove(fd_);
  waiting_writable_ = false;
}

void ConsoleOutput::flush(std::chrono::milliseconds idle_timeout) {
  if (fd_ < 0) return;
  while (!drain_once()) {
    pollfd p{fd_, POLLOUT, 0};
    int r = ::poll(&p, 1, static_cast<int>(idle_timeout.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) broken_ = true;  // the reader took nothing for idle_timeout: drop the rest
  }
}

}  // namespace microvm
