#include "bench/net/injector.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace microvm::netbench {

namespace {
// struct virtio_net_hdr without num_buffers: what PACKET_VNET_HDR prepends.
struct PacketVnetHdr {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};
static_assert(sizeof(PacketVnetHdr) == 10);
}  // namespace

Injector::Injector(int packet_fd, const Workload& w, unsigned window, EventFd wake)
    : fd_(packet_fd), w_(w), window_(window), batch_(std::clamp(window / 4, 1u, 32u)), wake_(std::move(wake)) {}

Result<std::unique_ptr<Injector>> Injector::create(int packet_fd, const Workload& w, unsigned window) {
  if (window == 0) return fail(EINVAL, "injector window must be > 0");
  auto wake = TRY(EventFd::create(/*nonblocking=*/true));
  return std::make_unique<Injector>(packet_fd, w, window, std::move(wake));
}

void Injector::start() {
  thread_ = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "net-inject");
    run();
  });
}

Result<void> Injector::stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    wake_.signal();
    thread_.join();
  }
  return error_;
}

void Injector::run() {
  std::vector<std::byte> frame(w_.frame_bytes);
  build_frame(w_, frame);
  VirtioNetHdr h = frame_header(w_);
  PacketVnetHdr ph{h.flags, h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset};
  iovec iov[2] = {{&ph, sizeof ph}, {frame.data(), frame.size()}};
  std::vector<mmsghdr> msgs(batch_);
  for (auto& m : msgs) {
    std::memset(&m, 0, sizeof m);
    m.msg_hdr.msg_iov = iov;  // the kernel copies; every message may share the same bytes
    m.msg_hdr.msg_iovlen = 2;
  }
  while (!stop_.load(std::memory_order_relaxed)) {
    uint64_t room = this->room();
    if (room < batch_) {
      waiting_.store(true, std::memory_order_seq_cst);
      if (this->room() >= batch_) {  // the receiver may have caught up before it saw the flag
        waiting_.store(false);
        continue;
      }
      pollfd p{wake_.fd(), POLLIN, 0};
      (void)::poll(&p, 1, 100);  // the timeout only bounds a missed wake-up
      wake_.drain();
      waiting_.store(false);
      continue;
    }
    unsigned n = static_cast<unsigned>(std::min<uint64_t>(room, batch_));
    int sent = ::sendmmsg(fd_, msgs.data(), n, 0);
    if (sent > 0) {
      sent_.fetch_add(static_cast<uint64_t>(sent), std::memory_order_seq_cst);
    } else if (sent < 0 && (errno == ENOBUFS || errno == EAGAIN)) {
      ++refused_;  // the tap's queue was full: dropped, not outstanding
      std::this_thread::yield();
    } else if (sent < 0 && errno != EINTR) {
      error_ = fail_errno("sendmmsg into the tap");
      return;
    }
  }
}

}  // namespace microvm::netbench
