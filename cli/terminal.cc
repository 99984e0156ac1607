#include "cli/terminal.h"

#include <unistd.h>

#include <cstdlib>

namespace microvm {
namespace {
// One controlling terminal per process, so one saved state: the CLI's, not the library's.
int g_fd = -1;
termios g_saved;
}  // namespace

void RawTerminal::restore_saved() {
  if (g_fd >= 0) tcsetattr(g_fd, TCSANOW, &g_saved);
}

RawTerminal::RawTerminal(int fd) {
  if (!isatty(fd) || tcgetattr(fd, &g_saved) != 0) return;
  g_fd = fd;
  termios raw = g_saved;
  // Like cfmakeraw, but keep output processing so host-side messages still get \r\n.
  raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
  raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
  raw.c_cflag &= ~(CSIZE | PARENB);
  raw.c_cflag |= CS8;
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  if (tcsetattr(fd, TCSANOW, &raw) == 0) {
    active_ = true;
    std::atexit(restore_saved);
  }
}

RawTerminal::~RawTerminal() {
  if (active_) restore_saved();
}

}  // namespace microvm
