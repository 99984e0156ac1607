#pragma once
// What the virtio-net device-mode benchmark measures: the workloads (direction x frame size),
// the frames themselves, one run's result, and the statistics shared by the standalone binary
// and `microvm bench`.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "virtio/net/net_spec.h"

namespace microvm::netbench {

enum class Direction {
  kTx,  // guest -> host: the driver transmits, the device writes the tap
  kRx,  // host -> guest: frames are sent into the tap's kernel side, the device reads the tap
};

struct Workload {
  std::string name;  // "tx_64b", "rx_tso64k": the metric prefix
  Direction direction = Direction::kTx;
  uint32_t frame_bytes = 64;  // Ethernet frame as written to / read from the tap (no FCS)
  bool tso = false;           // a TCPv4 GSO super-frame (NEEDS_CSUM, gso_size kTsoMss)
};

// 64 B, 1514 B (a 1500-byte IP packet) and 65 214 B TSO frames, TX then RX.
std::vector<Workload> default_workloads();

// Ethernet + IPv4 + TCP headers of every frame; the payload follows.
inline constexpr uint32_t kFrameHeaders = 14 + 20 + 20;
// The TSO super-frame a Linux guest's TCP sends at most: 45 segments of a 1448-byte MSS, as
// tcp_xmit_size_goal() bounds the payload below gso_max_size (64 KiB) minus header room. The
// kernel refuses to transmit GSO frames of 64 KiB and more into a tap (RX side), so a
// 65 535-byte IP packet is not an option.
inline constexpr uint16_t kTsoMss = 1448;
inline constexpr uint32_t kTsoFrameBytes = kFrameHeaders + 45 * kTsoMss;
// A marker the receiving side checks in every frame (right after the TCP header), so a run
// counts only frames that arrived intact and are ours (not stray IPv6 neighbour discovery).
inline constexpr uint32_t kTagOffset = kFrameHeaders;
inline constexpr uint32_t kTag = 0x6d766e62;  // "mvnb"

// Destination MAC of every frame: not the tap's own address, so on the TX path the tap's
// kernel side drops the frame right at IP input (PACKET_OTHERHOST) after accepting it.
inline constexpr uint8_t kPeerMac[6] = {0x02, 0x00, 0x00, 0x6e, 0x62, 0x02};
inline constexpr uint8_t kGuestMac[6] = {0x02, 0x00, 0x00, 0x6e, 0x62, 0x01};

// The virtio-net header for `w`'s frames: GSO TCPv4 + NEEDS_CSUM for TSO, zero otherwise.
VirtioNetHdr frame_header(const Workload& w);
// Writes `w.frame_bytes` bytes of frame (Ethernet/IPv4/TCP headers, tag, payload pattern) to
// `out`, which must be at least that long.
void build_frame(const Workload& w, std::span<std::byte> out);
// Whether a received frame is one of ours: the right length and the tag.
bool frame_ok(const Workload& w, std::span<const std::byte> frame);
// The tag alone, for a frame whose length was checked and whose first kTagOffset + 4 bytes
// are contiguous at `frame`.
bool has_tag(const std::byte* frame);

// One timed run of one workload, by either side (the device, or the plain tap loop).
struct RunResult {
  double seconds = 0;
  uint64_t frames = 0;  // frames moved inside the timed window
  uint64_t bytes = 0;   // their Ethernet bytes (no virtio-net header)
  double pps() const { return seconds > 0 ? static_cast<double>(frames) / seconds : 0; }
  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) * 8 / seconds / 1e9 : 0; }
  // Device side: notifications each way (what an ioeventfd / irqfd would carry).
  uint64_t kicks = 0, interrupts = 0;
  // Frames the tap's kernel side dropped (RX: its queue overflowed; should stay 0 with the
  // injector's window) and frames the receiver saw that were not ours.
  uint64_t tap_drops = 0, foreign = 0;
  // CPU time inside the timed window of the thread doing the tap I/O (the device's event-loop
  // thread; the baseline's loop) and, device side, of the driver thread that plays the guest.
  // On a shared host throughput follows the CPU share a thread gets; CPU per frame does not.
  double io_cpu_seconds = 0, driver_cpu_seconds = 0;
  double io_cpu_ns_per_frame() const { return frames ? io_cpu_seconds * 1e9 / static_cast<double>(frames) : 0; }
};

// CPU time of the calling thread, in seconds.
double thread_cpu_seconds();

// How long and how hard one run pushes; shared by both variants.
struct RunOptions {
  double seconds = 2;              // measured time
  std::string tap_name = "mvnb0";  // inside a private namespace: cannot clash with the host's
  uint16_t queue_size = 256;       // both virtqueues (Linux's and QEMU's default)
  // RX: frames outstanding between the injector and the receiver (see injector.h). Below the
  // tap's 500-frame queue so nothing is dropped; TSO super-frames get fewer.
  unsigned rx_window = 384, rx_window_tso = 64;
  // TX: bytes of frames outstanding on the ring, as Linux's TCP small queues bound one flow's
  // bytes below the socket (tcp_limit_output_bytes, 1 MiB): 16 TSO frames, a full ring of
  // small ones.
  uint64_t tx_inflight_bytes = 1 << 20;
};

// Frames on the TX ring at once: what a guest keeps queued, and the number of distinct
// buffers the baseline cycles through, so both sides copy from the same amount of memory.
unsigned tx_slots(const RunOptions& o, const Workload& w);
// RX buffer size a Linux guest posts with MRG_RXBUF (its estimate settles at 1536 bytes for
// MTU-sized traffic and at a page for TSO). The baseline reads into buffers covering the same
// total (queue_size * this), so both sides write the same amount of memory.
uint32_t rx_buffer_bytes(const Workload& w);

struct Summary {
  double median = 0, min = 0, max = 0;
};
Summary summarize(std::vector<double> values);

}  // namespace microvm::netbench
