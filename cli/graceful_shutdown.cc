#include "cli/graceful_shutdown.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

namespace microvm {
namespace {

constexpr char kSignal = 's';
constexpr char kDone = 'q';

std::atomic<int> g_notify_fd{-1};  // the active watcher's pipe, for the signal handler only

// Waits up to `timeout_ms` (-1: forever) for one byte; 0 on timeout.
char wait_byte(int fd, int timeout_ms) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    char c = 0;
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    return r == 1 ? c : kDone;  // EOF or error: treat as done
  }
}

}  // namespace

Result<std::unique_ptr<GracefulShutdown>> GracefulShutdown::start(Vm& vm, std::chrono::seconds timeout) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe2");
  std::unique_ptr<GracefulShutdown> g(new GracefulShutdown(vm, timeout, Fd(p[0]), Fd(p[1])));
  g->thread_ = std::thread([self = g.get()] { self->watch(); });
  g_notify_fd.store(p[1]);
  return g;
}

GracefulShutdown::~GracefulShutdown() {
  g_notify_fd.store(-1);
  char c = kDone;
  (void)!::write(write_.get(), &c, 1);
  if (thread_.joinable()) thread_.join();
}

bool GracefulShutdown::notify_from_signal() {
  int fd = g_notify_fd.load();
  if (fd < 0) return false;
  char c = kSignal;
  int saved = errno;
  (void)!::write(fd, &c, 1);
  errno = saved;
  return true;
}

void GracefulShutdown::watch() {
  if (wait_byte(read_.get(), -1) != kSignal) return;
  if (auto pressed = vm_.request_shutdown(); !pressed) {
    std::fprintf(stderr, "\r\nmicrovm: %s; stopping\n", pressed.error().what.c_str());
    vm_.stop();
    return;
  }
  std::fprintf(stderr, "\r\nmicrovm: pressed the guest's power button; stopping in %lld s unless it powers off\n",
               static_cast<long long>(timeout_.count()));
  // Wait for run() to end (kDone), a second signal, or the timeout.
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout_).count();
  char c = wait_byte(read_.get(), static_cast<int>(ms));
  if (c == kDone) return;
  if (c == 0)
    std::fprintf(stderr, "\r\nmicrovm: the guest did not power off within %lld s; stopping\n",
                 static_cast<long long>(timeout_.count()));
  vm_.stop();
}

}  // namespace microvm
