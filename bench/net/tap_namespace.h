#pragma once
// A tap in a private network namespace, and what the benchmark needs around it: a packet
// socket that sends frames into the tap's kernel side (the "host side" of the RX path) and the
// tap's kernel counters (the far side of the TX path).
//
// The namespace is made with unshare(CLONE_NEWNET) on a short-lived thread (network namespaces
// are per thread), and lives exactly as long as the fds opened inside it: the tap, the packet
// socket and /proc/net/dev all pin it. Nothing is named, nothing is left behind: dropping this
// object (or the process dying, on any error path) deletes the tap and the namespace. Needs
// CAP_SYS_ADMIN and CAP_NET_ADMIN (root).
#include <cstdint>
#include <memory>
#include <string>

#include "base/fd.h"
#include "base/result.h"
#include "devices/net/tap.h"

namespace microvm::netbench {

// The tap interface's kernel counters. The kernel's view is the reverse of ours: frames we
// write to the tap fd are its rx_*, frames it queues for us to read are its tx_*.
struct TapStats {
  uint64_t rx_packets = 0, rx_bytes = 0, rx_dropped = 0;
  uint64_t tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
};

class TapNamespace {
 public:
  // Creates the namespace (IPv6 off, so the kernel sends no neighbour discovery into the tap),
  // the tap `tap_name` in it (IFF_VNET_HDR, 12-byte header, up, non-blocking) and the packet
  // socket (PACKET_QDISC_BYPASS, PACKET_VNET_HDR: GSO frames go in as one super-frame).
  [[nodiscard]] static Result<std::unique_ptr<TapNamespace>> create(const std::string& tap_name);

  // The tap backend, until a device takes it (take_tap()); the namespace stays alive either way.
  TapBackend& tap() { return *tap_; }
  [[nodiscard]] std::unique_ptr<TapBackend> take_tap() { return std::move(tap_); }
  const std::string& tap_name() const { return name_; }
  int packet_fd() const { return packet_.get(); }
  [[nodiscard]] Result<TapStats> stats() const;

 private:
  TapNamespace() = default;
  std::string name_;
  std::unique_ptr<TapBackend> tap_;
  Fd packet_;
  Fd proc_net_dev_;  // opened inside the namespace: reads show its interfaces
};

}  // namespace microvm::netbench
