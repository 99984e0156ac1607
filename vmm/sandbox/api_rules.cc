// The API role: the REST server thread (api/api_server.h) once configuration is closed.
// It accepts connections on its already-bound socket, reads and answers requests and
// stops the Vm; it never opens a path, creates a socket or touches KVM.
#include <sys/epoll.h>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_api_rules(SyscallPolicy& p, const SandboxNeeds&) {
  auto allow = [&p](int nr) { p.push_back({nr, {}}); };
  allow(SCMP_SYS(epoll_wait));
  allow(SCMP_SYS(epoll_pwait));
  allow(SCMP_SYS(epoll_ctl));
  allow(SCMP_SYS(accept4));   // on the listening socket bound before the filter
  allow(SCMP_SYS(recvfrom));  // recv()
  allow(SCMP_SYS(sendto));    // send(..., MSG_NOSIGNAL)
}

}  // namespace microvm
