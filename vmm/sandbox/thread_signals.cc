#include "vmm/sandbox/thread_signals.h"

#include <pthread.h>
#include <signal.h>

#include <initializer_list>

namespace microvm {

void block_async_signals() {
  sigset_t set;
  sigfillset(&set);
  for (int sig : {SIGUSR2, SIGSYS, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGPIPE, SIGXFSZ}) sigdelset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace microvm
