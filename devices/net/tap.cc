#include "devices/net/tap.h"

#include <fcntl.h>
// <net/if.h> first, in a block of its own so sorting keeps it there: glibc then keeps
// <linux/if.h> from redefining its structures.
#include <net/if.h>

#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace microvm {
namespace {

Result<void> copy_ifname(char (&dst)[IFNAMSIZ], const std::string& name) {
  if (name.size() >= IFNAMSIZ) return fail(EINVAL, "interface name too long: " + name);
  std::memset(dst, 0, IFNAMSIZ);
  std::memcpy(dst, name.data(), name.size());
  return {};
}

// Sets IFF_UP on `name` through the AF_INET control socket `sock` (needs CAP_NET_ADMIN).
// Returns whether it was down before.
Result<bool> link_up(int sock, const std::string& name) {
  ifreq ifr{};
  TRY(copy_ifname(ifr.ifr_name, name));
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return fail_errno("SIOCGIFFLAGS " + name);
  if (ifr.ifr_flags & IFF_UP) return false;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) return fail_errno("bringing " + name + " up");
  return true;
}

Result<void> add_to_bridge(const std::string& bridge, const std::string& tap) {
  unsigned index = ::if_nametoindex(tap.c_str());
  if (index == 0) return fail_errno("if_nametoindex " + tap);
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return fail_errno("socket(AF_INET)");
  ifreq ifr{};
  TRY(copy_ifname(ifr.ifr_name, bridge));
  ifr.ifr_ifindex = static_cast<int>(index);
  if (::ioctl(sock.get(), SIOCBRADDIF, &ifr) < 0) return fail_errno("adding " + tap + " to bridge " + bridge);
  return {};
}

}  // namespace

Result<std::unique_ptr<TapBackend>> TapBackend::open(const TapOptions& options) {
  // A tap that exists now is the administrator's: at exit it is left as it was found. One we
  // create is not persistent, so the kernel removes it when our fd closes.
  bool existed = !options.name.empty() && ::if_nametoindex(options.name.c_str()) != 0;
  Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return fail_errno("open /dev/net/tun");
  ifreq ifr{};
  TRY(copy_ifname(ifr.ifr_name, options.name));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0)
    return fail_errno(options.name.empty() ? "creating a tap" : "attaching to tap " + options.name);
  std::string name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  int hdr = static_cast<int>(kVnetHeaderSize);
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) < 0) return fail_errno("TUNSETVNETHDRSZ on " + name);
  // No offloads until the driver says what it accepts: the kernel finishes checksums itself.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0u) < 0) return fail_errno("TUNSETOFFLOAD on " + name);
  if (!options.bridge.empty()) TRY(add_to_bridge(options.bridge, name));
  // An existing tap configured by an administrator may already be up; only a failure to bring
  // a down link up is an error. The control socket is kept when the link must go down again at
  // exit: tear-down runs under the supervisor sandbox, which creates no sockets.
  Fd control(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!control) return fail_errno("socket(AF_INET)");
  bool was_down = TRY(link_up(control.get(), name));
  std::unique_ptr<TapBackend> tap(new TapBackend(std::move(fd), name, true));
  if (existed && was_down) tap->restore_down_ = std::move(control);
  return tap;
}

TapBackend::~TapBackend() {
  if (!restore_down_) return;
  ifreq ifr{};
  if (!copy_ifname(ifr.ifr_name, name_)) return;
  if (::ioctl(restore_down_.get(), SIOCGIFFLAGS, &ifr) < 0) return;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  ::ioctl(restore_down_.get(), SIOCSIFFLAGS, &ifr);  // best effort: the interface may be gone
}

std::unique_ptr<TapBackend> TapBackend::from_fd(Fd fd, std::string name) {
  return std::unique_ptr<TapBackend>(new TapBackend(std::move(fd), std::move(name), false));
}

Result<void> TapBackend::send(std::span<const iovec> frame) {
  for (;;) {
    // One buffer: write(), which skips writev()'s iovec import (measurable per small frame).
    ssize_t n = frame.size() == 1 ? ::write(fd_.get(), frame[0].iov_base, frame[0].iov_len)
                                  : ::writev(fd_.get(), frame.data(), static_cast<int>(frame.size()));
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    return fail_errno("write to " + name_);
  }
}

Result<size_t> TapBackend::recv(std::span<std::byte> buf) {
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return size_t{0};
    return fail_errno("read from " + name_);
  }
}

Result<size_t> TapBackend::recv_scatter(std::span<const iovec> bufs) {
  for (;;) {
    ssize_t n = ::readv(fd_.get(), bufs.data(), static_cast<int>(bufs.size()));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return size_t{0};
    return fail_errno("read from " + name_);
  }
}

Result<void> TapBackend::set_offloads(const NetOffloads& o) {
  if (!is_tap_) return {};
  unsigned flags = 0;
  if (o.csum) {
    flags |= TUN_F_CSUM;
    // TSO/ECN/UFO are only meaningful with partial checksums (the kernel refuses them alone).
    if (o.tso4) flags |= TUN_F_TSO4;
    if (o.tso6) flags |= TUN_F_TSO6;
    if (o.ecn && (o.tso4 || o.tso6)) flags |= TUN_F_TSO_ECN;
    if (o.ufo) flags |= TUN_F_UFO;
  }
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, flags) < 0) return fail_errno("TUNSETOFFLOAD on " + name_);
  return {};
}

}  // namespace microvm
