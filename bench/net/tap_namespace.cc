#include "bench/net/tap_namespace.h"

#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <thread>

namespace microvm::netbench {

namespace {

// Best effort: without IPv6 in the kernel the files do not exist, and then nothing is sent.
void disable_ipv6() {
  for (const char* path :
       {"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"}) {
    Fd f(::open(path, O_WRONLY | O_CLOEXEC));
    if (f) (void)!::write(f.get(), "1", 1);
  }
}

}  // namespace

Result<std::unique_ptr<TapNamespace>> TapNamespace::create(const std::string& tap_name) {
  std::unique_ptr<TapNamespace> ns(new TapNamespace);
  Result<void> setup;
  // unshare(CLONE_NEWNET) moves only the calling thread; this thread then ends, and the fds it
  // opened keep the namespace (and everything in it) alive.
  std::thread t([&] {
    setup = [&]() -> Result<void> {
      if (::unshare(CLONE_NEWNET) != 0) return fail_errno("unshare(CLONE_NEWNET) (needs root)");
      disable_ipv6();
      ns->tap_ = TRY(TapBackend::open({.name = tap_name, .bridge = ""}));
      ns->name_ = ns->tap_->name();
      unsigned index = ::if_nametoindex(ns->name_.c_str());
      if (index == 0) return fail_errno("if_nametoindex " + ns->name_);
      // Protocol 0: this socket only sends, so the kernel hooks no receive tap on the device.
      ns->packet_ = Fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
      if (!ns->packet_) return fail_errno("socket(AF_PACKET)");
      int one = 1;
      if (::setsockopt(ns->packet_.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0)
        return fail_errno("PACKET_QDISC_BYPASS");
      if (::setsockopt(ns->packet_.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0)
        return fail_errno("PACKET_VNET_HDR");
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = 0;
      sll.sll_ifindex = static_cast<int>(index);
      if (::bind(ns->packet_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
        return fail_errno("bind packet socket to " + ns->name_);
      ns->proc_net_dev_ = Fd(::open("/proc/thread-self/net/dev", O_RDONLY | O_CLOEXEC));
      if (!ns->proc_net_dev_) return fail_errno("open /proc/thread-self/net/dev");
      return {};
    }();
  });
  t.join();
  if (!setup) return std::unexpected(setup.error().context("network namespace for the tap"));
  return ns;
}

Result<TapStats> TapNamespace::stats() const {
  std::string text;
  char buf[4096];
  if (::lseek(proc_net_dev_.get(), 0, SEEK_SET) < 0) return fail_errno("lseek /proc/net/dev");
  for (;;) {
    ssize_t n = ::read(proc_net_dev_.get(), buf, sizeof buf);
    if (n < 0) return fail_errno("read /proc/net/dev");
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  // "  name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes packets errs drop ..."
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string ifname = line.substr(0, colon);
    ifname.erase(0, ifname.find_first_not_of(' '));
    if (ifname != name_) continue;
    std::istringstream f(line.substr(colon + 1));
    uint64_t v[16] = {};
    for (auto& x : v)
      if (!(f >> x)) return fail(EINVAL, "unexpected /proc/net/dev line: " + line);
    TapStats s;
    s.rx_bytes = v[0], s.rx_packets = v[1], s.rx_dropped = v[3];
    s.tx_bytes = v[8], s.tx_packets = v[9], s.tx_dropped = v[11];
    return s;
  }
  return fail(ENOENT, name_ + " is not in the namespace's /proc/net/dev");
}

}  // namespace microvm::netbench
