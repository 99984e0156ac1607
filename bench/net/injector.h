#pragma once
// The host side of the RX path: a thread that sends frames into the tap's kernel side through
// a packet socket (sendmmsg, qdisc bypassed), so the kernel queues them for whoever reads the
// tap fd: the device, or the plain baseline loop.
//
// Flow control: at most `window` frames are outstanding (sent, not yet received). The tap's
// kernel queue holds 500 frames and drops beyond that; an injector that overran it would spend
// CPU on frames nobody receives, CPU that the two CPUs of a small host then lack on the
// receiving side. With the window no frame is dropped and the injector sleeps while the
// receiver catches up. Both variants get the same injector.
#include <atomic>
#include <cstdint>
#include <thread>

#include "base/event_fd.h"
#include "base/result.h"
#include "bench/net/workload.h"

namespace microvm::netbench {

class Injector {
 public:
  Injector(int packet_fd, const Workload& w, unsigned window, EventFd wake);
  ~Injector() { (void)stop(); }
  [[nodiscard]] static Result<std::unique_ptr<Injector>> create(int packet_fd, const Workload& w, unsigned window);

  void start();
  // The receiver got `n` of our frames. Cheap when the injector is not waiting.
  void on_received(uint64_t n) {
    received_.fetch_add(n, std::memory_order_seq_cst);
    if (waiting_.load(std::memory_order_seq_cst) && room() >= batch_ && waiting_.exchange(false)) wake_.signal();
  }
  // Stops and joins; the error, if sending failed.
  [[nodiscard]] Result<void> stop();
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  // sendmmsg() refusals with ENOBUFS (the tap's queue was full: should stay 0).
  uint64_t refused() const { return refused_; }

 private:
  void run();
  uint64_t room() const {
    uint64_t out = sent_.load(std::memory_order_seq_cst) - received_.load(std::memory_order_seq_cst);
    return out >= window_ ? 0 : window_ - out;
  }

  int fd_;
  Workload w_;
  unsigned window_, batch_;
  EventFd wake_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, waiting_{false};
  std::atomic<uint64_t> sent_{0}, received_{0};
  uint64_t refused_ = 0;
  Result<void> error_;
};

}  // namespace microvm::netbench
