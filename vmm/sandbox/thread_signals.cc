#include "vmm/sandbox/thread_signals.h"

#include <pthread.h>
#include <signal.h>

#include <initializer_list>

namespace microvm {

void block_async_signals() {
  sigset_t set;
  sigfillset(&set);
  // SIGPIPE stays blocked: libslirp writes to host sockets without MSG_NOSIGNAL, and a peer
  // that closed its end must cost that connection an EPIPE, not the whole VM its life.
  for (int sig : {SIGUSR2, SIGSYS, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGXFSZ}) sigdelset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace microvm
