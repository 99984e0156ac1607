#pragma once
// What user networking refuses before a guest frame reaches libslirp. libslirp's
// disable_host_loopback stops 10.0.2.2 (and the rest of 10.0.2.0/24) from being rewritten to
// the host's 127.0.0.1, but a guest can also address the host's own private ranges directly:
// 127.0.0.0/8 and 0.0.0.0/8 (a connect() to 0.0.0.0 reaches the host's loopback on Linux) and
// link-local 169.254.0.0/16 (cloud metadata services). libslirp 4.7 has no option for those, so
// the backend drops such frames itself. Nor has it one for the host's own addresses (a LAN
// address, a bridge's 172.17.0.1): libslirp connect()s to them from the host, where services
// bound to 0.0.0.0 answer, though nobody forwarded them; those are dropped too. The nameserver alias is rewritten by
// libslirp to the host's resolver, whatever the port: only port 53 is let through to it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace microvm {

enum class SlirpVerdict {
  kPass,         // hand the frame to libslirp
  kHostLocal,    // IPv4 to 0/8, 127/8 or 169.254/16
  kHostAddress,  // IPv4 to one of the host's own addresses
  kNotDns,       // TCP/UDP to the nameserver alias on a port other than 53
  kMalformed,    // an IPv4 frame too short for the headers the checks need
};

// `frame` is an Ethernet frame (no virtio-net header); `nameserver` the DNS alias and
// `host_addresses` the host's own IPv4 addresses, in host order. Pure and cheap: a few byte
// loads and a scan of the (short) address list, no allocation.
SlirpVerdict check_guest_frame(std::span<const std::byte> frame, uint32_t nameserver,
                               std::span<const uint32_t> host_addresses = {});

// The host's IPv4 addresses on every interface (getifaddrs), 127/8 left out (host_local
// covers it), in host order. Read once at setup: an address the host gains later is not
// known (the event loop may not open netlink sockets to learn it).
std::vector<uint32_t> host_ipv4_addresses();

// Whether libslirp may open a new host socket for this guest frame: a TCP SYN (without ACK),
// a UDP datagram (but DHCP, which slirp answers itself), an ICMP echo request leaving the
// virtual network. The host-socket cap applies to these frames only.
bool may_open_host_socket(std::span<const std::byte> frame, uint32_t vnetwork, uint32_t vnetmask);

// Counts the host sockets in libslirp's slirp_connection_info() text: table rows whose fd
// column (the number after the "PROTO[STATE]" field) is not negative.
size_t count_slirp_sockets(std::string_view connection_info);

}  // namespace microvm
