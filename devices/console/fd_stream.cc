#include "devices/console/fd_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace microvm {

Result<void> FdStream::open(EventLoop& loop, Fd fd, bool is_socket, PortBackend::Sink& sink) {
  close();
  const int raw = fd.get();
  TRY(loop.add(raw, EPOLLIN, [this](uint32_t events) { on_events(events); }));
  fd_ = std::move(fd);
  loop_ = &loop;
  sink_ = &sink;
  interest_ = EPOLLIN;
  registered_ = true;
  is_socket_ = is_socket;
  return {};
}

void FdStream::close() {
  if (loop_ && fd_.valid() && registered_) loop_->remove(fd_.get());
  registered_ = false;
  fd_.reset();
  loop_ = nullptr;
  held_.clear();
  out_.clear();
  interest_ = 0;
}

void FdStream::on_events(uint32_t events) {
  if (events & EPOLLOUT) {
    if (!flush()) return hang_up();
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_some();
}

void FdStream::read_some() {
  if (!fd_.valid() || !held_.empty()) return;
  std::byte buf[4096];
  ssize_t n = ::read(fd_.get(), buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) return hang_up();
  held_.assign(buf, buf + n);
  offer_held();
}

void FdStream::offer_held() {
  size_t taken = sink_->host_input(held_);
  held_.erase(held_.begin(), held_.begin() + static_cast<ptrdiff_t>(std::min(taken, held_.size())));
  update_interest();
}

void FdStream::resume_input() {
  if (!fd_.valid()) return;
  if (!held_.empty())
    offer_held();
  else
    update_interest();
  // Back on the loop: a peer that left meanwhile is noticed by the next read (0 bytes).
}

void FdStream::write(std::span<const std::byte> bytes) {
  if (!fd_.valid()) {
    count_dropped(bytes.size());
    return;
  }
  size_t room = capacity_ - out_.size();
  size_t n = std::min(room, bytes.size());
  out_.insert(out_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
  if (n < bytes.size()) count_dropped(bytes.size() - n);
  if (!flush()) return hang_up();
  update_interest();
}

bool FdStream::flush() {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n = is_socket_ ? ::send(fd_.get(), out_.data() + done, out_.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                           : ::write(fd_.get(), out_.data() + done, out_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(done));
  return true;
}

void FdStream::update_interest() {
  if (!fd_.valid()) return;
  uint32_t want = (held_.empty() ? EPOLLIN : 0) | (out_.empty() ? 0 : EPOLLOUT);
  if (want == 0) {
    // Off the loop entirely: epoll reports a hang-up even with no events asked for, and
    // a peer that wrote and left would spin the loop while its bytes wait for the guest.
    if (registered_) loop_->remove(fd_.get());
    registered_ = false;
    interest_ = 0;
    return;
  }
  if (!registered_) {
    if (!loop_->add(fd_.get(), want, [this](uint32_t events) { on_events(events); })) return;
    registered_ = true;
    interest_ = want;
    return;
  }
  if (want == interest_) return;
  if (loop_->modify(fd_.get(), want)) interest_ = want;
}

void FdStream::hang_up() {
  count_dropped(out_.size());
  close();
  if (on_closed_) on_closed_();
}

}  // namespace microvm
