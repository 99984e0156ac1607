// The event-loop role: virtqueue processing, block I/O, tap and slirp traffic, vhost
// messages, timers. It opens no path and starts no process; sockets only with --net user.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
// The legacy vring helpers in virtio_ring.h are C, not C++.
#define VIRTIO_RING_NO_LEGACY 1
#include <linux/vhost.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <utility>
#include <vector>

#include "vmm/sandbox/policy.h"

namespace microvm {

void add_event_loop_rules(SyscallPolicy& p, const SandboxNeeds& needs) {
  auto allow = [&p](int nr, std::vector<scmp_arg_cmp> args = {}) { p.push_back({nr, std::move(args)}); };
  auto allow_ioctl = [&allow](unsigned long req) { allow(SCMP_SYS(ioctl), {SCMP_A1(SCMP_CMP_EQ, req)}); };

  // The loop itself: waiting, (un)registering fds as devices activate and reset.
  allow(SCMP_SYS(epoll_wait));
  allow(SCMP_SYS(epoll_pwait));
  allow(SCMP_SYS(epoll_ctl));
  // Slirp's timer and its poll of its own sockets (zero timeout).
  allow(SCMP_SYS(timerfd_settime));
  allow(SCMP_SYS(timerfd_gettime));
  allow(SCMP_SYS(poll));
  allow(SCMP_SYS(ppoll));

  // Block back ends on already-open image fds: the io_uring engine, the synchronous engine
  // and qcow2 metadata (table reads/writes, growth, flush ordering, discard).
  allow(SCMP_SYS(io_uring_enter));
  allow(SCMP_SYS(pread64));
  allow(SCMP_SYS(pwrite64));
  allow(SCMP_SYS(preadv));
  allow(SCMP_SYS(pwritev));
  allow(SCMP_SYS(preadv2));
  allow(SCMP_SYS(pwritev2));
  allow(SCMP_SYS(fdatasync));
  allow(SCMP_SYS(fsync));
  allow(SCMP_SYS(fallocate));
  allow(SCMP_SYS(ftruncate));
  allow(SCMP_SYS(lseek));

  // vhost-user (virtio-fs): messages with SCM_RIGHTS on the connected socket.
  allow(SCMP_SYS(sendmsg));
  allow(SCMP_SYS(recvmsg));
  // A share's activation hands its worker thread copies of the fds it sends (doorbells,
  // call eventfds): the transport may close its own before the worker sends them.
  if (needs.vhost_user) allow(SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, F_DUPFD_CLOEXEC)});

  // Device activation and reset: irqfds, doorbell ioeventfds, MSI routes.
  add_kvm_vm_runtime_ioctls(p);
  // Vm::pause()/resume(): the loop saves kvmclock once the vCPUs are parked and restores it
  // before they run again.
  allow_ioctl(KVM_GET_CLOCK);
  allow_ioctl(KVM_SET_CLOCK);
  if (needs.tap_net) allow_ioctl(TUNSETOFFLOAD);  // offloads follow the features the guest accepted
  if (needs.vhost_net) {
    // Ring setup when the guest starts the device (VHOST_SET_OWNER happened at setup).
    for (unsigned long req :
         {static_cast<unsigned long>(VHOST_GET_FEATURES), static_cast<unsigned long>(VHOST_SET_FEATURES),
          static_cast<unsigned long>(VHOST_SET_MEM_TABLE), static_cast<unsigned long>(VHOST_SET_VRING_NUM),
          static_cast<unsigned long>(VHOST_SET_VRING_BASE), static_cast<unsigned long>(VHOST_GET_VRING_BASE),
          static_cast<unsigned long>(VHOST_SET_VRING_ADDR), static_cast<unsigned long>(VHOST_SET_VRING_KICK),
          static_cast<unsigned long>(VHOST_SET_VRING_CALL), static_cast<unsigned long>(VHOST_NET_SET_BACKEND)})
      allow_ioctl(req);
  }

  if (needs.child_processes) {
    // A virtiofsd whose socket hung up is reaped to say how it ended; never blocking.
    allow(SCMP_SYS(wait4), {SCMP_A2(SCMP_CMP_EQ, WNOHANG)});
  }

  if (needs.console_sockets) {
    // virtio-console ports on Unix sockets microvm listens on (bound before the sandbox):
    // accept a client, write to it without SIGPIPE. The flags are the ones the port uses.
    allow(SCMP_SYS(accept4), {SCMP_A3(SCMP_CMP_EQ, static_cast<uint64_t>(SOCK_NONBLOCK | SOCK_CLOEXEC))});
    allow(SCMP_SYS(sendto), {SCMP_A3(SCMP_CMP_EQ, static_cast<uint64_t>(MSG_NOSIGNAL | MSG_DONTWAIT))});
  }
  if (needs.vsock) {
    // Guest connections open AF_UNIX stream sockets to "<path>_<port>"; host clients are
    // accepted on the socket bound at setup; a guest SEND shutdown becomes shutdown(SHUT_WR).
    // Data moves with readv/sendmsg (allowed above) and recvfrom (MSG_PEEK for the CONNECT line).
    allow(SCMP_SYS(socket), {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(AF_UNIX)),
                             SCMP_A1(SCMP_CMP_EQ, static_cast<uint64_t>(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC))});
    allow(SCMP_SYS(connect));
    allow(SCMP_SYS(accept4));
    allow(SCMP_SYS(shutdown));
    allow(SCMP_SYS(sendto));
    allow(SCMP_SYS(recvfrom));
  }

  if (needs.user_net) {
    // libslirp turns guest TCP/UDP/ICMP flows into host sockets: IPv4/IPv6 stream and
    // datagram with the default protocol (TCP, UDP) or ICMP echo's (SOCK_DGRAM/IPPROTO_ICMP,
    // ICMPV6) only — no AF_UNIX, AF_NETLINK, AF_PACKET or raw sockets, and none of the
    // protocols the default ones would reach past (SCTP, MPTCP, UDP-Lite).
    for (int family : {AF_INET, AF_INET6})
      for (int type : {SOCK_STREAM, SOCK_DGRAM})
        for (int protocol : {0, int{IPPROTO_TCP}, int{IPPROTO_UDP}, int{IPPROTO_ICMP}, int{IPPROTO_ICMPV6}})
          allow(SCMP_SYS(socket),
                {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(family)),
                 SCMP_A1(SCMP_CMP_MASKED_EQ, ~static_cast<uint64_t>(SOCK_NONBLOCK | SOCK_CLOEXEC) & 0xffffffffu,
                         static_cast<uint64_t>(type)),
                 SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(protocol))});
    allow(SCMP_SYS(connect));
    // No bind or listen: hostfwd listeners are bound at setup, and libslirp binds or listens
    // at run time only for its protocol emulation (FTP/IRC, SlirpConfig::enable_emu, off) or
    // an outbound address (not set).
    allow(SCMP_SYS(accept));
    allow(SCMP_SYS(accept4));
    allow(SCMP_SYS(sendto));
    allow(SCMP_SYS(recvfrom));
    allow(SCMP_SYS(shutdown));
    // Socket options: the ones libslirp sets (SO_REUSEADDR, SO_OOBINLINE, TCP_NODELAY;
    // IP_TOS/IP_TTL and their IPv6 forms for forwarded datagrams) and a few close kin, by
    // level and name: no filter attachment (SO_ATTACH_*), no TCP_ULP (kTLS), nothing at
    // another level.
    const std::pair<int, std::vector<int>> options[] = {
        {SOL_SOCKET,
         {SO_REUSEADDR, SO_REUSEPORT, SO_OOBINLINE, SO_KEEPALIVE, SO_SNDBUF, SO_RCVBUF, SO_LINGER, SO_BROADCAST}},
        {IPPROTO_TCP, {TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}},
        {IPPROTO_IP, {IP_TOS, IP_TTL, IP_RECVERR, IP_MTU_DISCOVER}},
        {IPPROTO_IPV6, {IPV6_V6ONLY, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_RECVERR}},
    };
    for (const auto& [level, names] : options)
      for (int name : names)
        // int arguments: only the low 32 bits of the register are defined.
        allow(SCMP_SYS(setsockopt), {SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(level)),
                                     SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, static_cast<uint64_t>(name))});
    allow(SCMP_SYS(getsockopt));
    allow(SCMP_SYS(getsockname));
    allow(SCMP_SYS(getpeername));
    allow(SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, F_GETFL)});  // non-blocking sockets
    allow(SCMP_SYS(fcntl), {SCMP_A1(SCMP_CMP_EQ, F_SETFL)});
    allow_ioctl(FIONREAD);  // UDP datagram size before recvfrom
    allow_ioctl(FIONBIO);
    // The one path read at run time: libslirp forwards the guest's DNS queries (10.0.2.3)
    // to the host's resolver, which it reads from /etc/resolv.conf (fopen "r", re-read when
    // its stat changes); GLib, which libslirp logs through, reads /etc/localtime (O_CLOEXEC)
    // to timestamp a warning. Read-only opens only, whatever else their flags say: nothing can
    // be created, written, truncated or made an anonymous temporary file.
    constexpr uint64_t kWritingFlags = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE;
    allow(SCMP_SYS(openat), {SCMP_A2(SCMP_CMP_MASKED_EQ, kWritingFlags, O_RDONLY)});
    allow(SCMP_SYS(newfstatat));
  }
}

}  // namespace microvm
