#pragma once
// User networking, device mode: guest TCP frames through a user-mode network backend to a host
// TCP socket and back, for libslirp in our process (--net user) and for a passt process
// (--net passt), the same workload on both.
//
// A host thread connects to the backend's port forward (127.0.0.1:P -> guest port 80) and
// echoes everything it reads. The calling thread plays the guest and the device's event loop
// at once: it polls the backend's fd, answers ARP, accepts the forwarded connection (SYN-ACK),
// and keeps sending 1460-byte segments (1514-byte frames, the MSS a 1500-byte MTU gives, for
// both backends alike) within the peer's window, acknowledging the echoed data as it comes
// back; lost or refused segments are resent from the last acknowledged byte after 100 ms
// (go-back-N). Frames go straight to NetBackend::send/recv with a zero virtio-net header: the
// virtqueue in front is the same for every backend and the tap rows measure it.
//
// What it reports: echoed payload per second, and CPU per guest frame (frames sent plus
// received) of the guest/loop thread alone and of that thread plus the passt process (what
// the machine spends; for libslirp the two are the same thread).
#include <cstdint>

#include "base/result.h"

namespace microvm::netbench {

enum class UserBackend { kSlirp, kPasst };
const char* user_backend_name(UserBackend b);  // "slirp", "passt"

struct UserEchoResult {
  double seconds = 0;
  uint64_t echoed_bytes = 0;  // payload that went out and came back
  uint64_t frames = 0;        // guest frames sent and received
  uint64_t retransmits = 0;   // go-back-N rounds
  double loop_cpu_seconds = 0;
  double helper_cpu_seconds = 0;  // the passt process; 0 for libslirp
  double mib_per_second() const { return seconds > 0 ? double(echoed_bytes) / seconds / (1 << 20) : 0; }
  double loop_cpu_ns_per_frame() const { return frames ? loop_cpu_seconds * 1e9 / double(frames) : 0; }
  double total_cpu_ns_per_frame() const {
    return frames ? (loop_cpu_seconds + helper_cpu_seconds) * 1e9 / double(frames) : 0;
  }
};

[[nodiscard]] Result<UserEchoResult> run_user_echo(UserBackend backend, double seconds);

}  // namespace microvm::netbench
