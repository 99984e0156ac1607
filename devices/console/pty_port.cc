#include "devices/console/pty_port.h"

#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>

namespace microvm {

Result<std::unique_ptr<PtyPort>> PtyPort::open() {
  int master = -1, slave = -1;
  char name[128];
  if (::openpty(&master, &slave, name, nullptr, nullptr) != 0) return fail_errno("openpty");
  Fd m(master), s(slave);
  // Raw: bytes pass untouched both ways (no echo back into the guest, no CR/LF mapping).
  termios t{};
  if (::tcgetattr(s.get(), &t) == 0) {
    ::cfmakeraw(&t);
    ::tcsetattr(s.get(), TCSANOW, &t);
  }
  int flags = ::fcntl(m.get(), F_GETFL);
  if (flags < 0 || ::fcntl(m.get(), F_SETFL, flags | O_NONBLOCK) != 0) return fail_errno("pty: O_NONBLOCK");
  ::fcntl(m.get(), F_SETFD, FD_CLOEXEC);
  ::fcntl(s.get(), F_SETFD, FD_CLOEXEC);
  return std::unique_ptr<PtyPort>(new PtyPort(std::move(m), std::move(s), name));
}

Result<void> PtyPort::start(EventLoop& loop, Sink& sink) {
  if (!master_) return fail(EBUSY, "pty port already started");
  return stream_.open(loop, std::move(master_), false, sink);
}

void PtyPort::guest_output(std::span<const std::byte> bytes) { stream_.write(bytes); }

}  // namespace microvm
