#pragma once
// The `host` baseline: a plain loop doing the same tap I/O as the device, with no virtio in
// between. Same namespace set-up, same tap flags (IFF_VNET_HDR, 12-byte header, the offloads
// a Linux guest's features turn on), same frames.
//  TX: write(tap, virtio-net header + frame) back to back; the kernel side counts and drops
//      the frames exactly as it does for the device.
//  RX: the same injector as the device run; the loop reads the tap fd until EAGAIN, checks each
//      frame (length, tag) and sleeps in poll() when the queue is empty, as the device's event
//      loop sleeps in epoll_wait().
#include "base/result.h"
#include "bench/net/workload.h"

namespace microvm::netbench {

[[nodiscard]] Result<RunResult> run_tap_loop(const RunOptions& options, const Workload& w);

}  // namespace microvm::netbench
