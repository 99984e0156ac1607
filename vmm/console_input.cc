#include "vmm/console_input.h"

#include <unistd.h>

#include <cstring>
#include <vector>

namespace microvm {
namespace {
constexpr uint8_t kCtrlA = 0x01;
constexpr char kEscapeHelp[] = "\r\nC-a h    print this help\r\nC-a x    exit microvm\r\nC-a a    send C-a\r\n";
}  // namespace

ConsoleInput::~ConsoleInput() {
  if (loop_) loop_->remove(in_fd_);
}

Result<void> ConsoleInput::attach(EventLoop& loop) {
  if (in_fd_ < 0) return {};
  auto added = loop.add(in_fd_, EPOLLIN, [this](uint32_t ev) { on_readable(ev); });
  if (!added) {
    // epoll refuses regular files (EPERM); such input would always be "ready", so skip it.
    if (added.error().code == EPERM) {
      log_.log(LogLevel::kDebug, "console input is not pollable; guest console input disabled");
      return {};
    }
    return std::unexpected(added.error().context("console input"));
  }
  loop_ = &loop;
  return {};
}

void ConsoleInput::on_readable(uint32_t events) {
  uint8_t buf[256];
  size_t room = std::min(sizeof buf, uart_.input_space());
  if (room == 0) room = 1;  // keep draining; the UART drops what overflows, like real hardware
  ssize_t n = ::read(in_fd_, buf, room);
  if (n > 0) {
    feed(buf, static_cast<size_t>(n));
    return;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  // End of input (or an error): stop polling, the VM keeps running.
  loop_->remove(in_fd_);
  loop_ = nullptr;
}

void ConsoleInput::feed(const uint8_t* data, size_t n) {
  if (!escapes_) {
    uart_.enqueue_input({data, n});
    return;
  }
  std::vector<uint8_t> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = data[i];
    if (escape_pending_) {
      escape_pending_ = false;
      if (c == 'x' || c == 'X') {
        uart_.enqueue_input(out);
        on_quit_();
        return;
      }
      if (c == 'h' || c == 'H' || c == '?') {
        out_.write({reinterpret_cast<const uint8_t*>(kEscapeHelp), sizeof kEscapeHelp - 1});
        continue;
      }
      if (c == 'a' || c == kCtrlA) {
        out.push_back(kCtrlA);
        continue;
      }
      out.push_back(kCtrlA);
      out.push_back(c);
      continue;
    }
    if (c == kCtrlA) {
      escape_pending_ = true;
      continue;
    }
    out.push_back(c);
  }
  if (!out.empty()) uart_.enqueue_input(out);
}

}  // namespace microvm
