#pragma once
// The device side of the benchmark: a host thread plays the guest's virtio-net driver against
// the real NetDevice and the real tap backend, in a private network namespace.
//
// Wiring, as in the VMM: guest RAM is a memfd GuestMemory; the device is activated with its RX
// and TX queues, whose kick fds are eventfds the driver writes (what KVM's ioeventfd does on a
// guest doorbell write), and an Interrupt that signals one eventfd per queue (what an irqfd
// does); the device runs on its own EventLoop thread. The driver negotiates what Linux's
// virtio_net does: VERSION_1, EVENT_IDX, INDIRECT_DESC, MRG_RXBUF, CSUM/GUEST_CSUM and
// HOST/GUEST_TSO4/6.
//  TX: every slot of the TX ring holds one frame, kept full: 64 B and 1514 B frames are one
//      descriptor (header and frame contiguous, as Linux pushes the header into the skb's
//      headroom); 64 KiB TSO frames are an indirect table of the headers plus 4 KiB pieces (an
//      skb's linear part plus page fragments). The driver asks for an interrupt when 3/4 of
//      the outstanding frames are done (Linux's virtqueue_enable_cb_delayed), reposts the
//      completed slots and kicks only when avail_event asks.
//  RX: the RX ring holds one single-descriptor buffer per slot (1536 bytes, 4 KiB for TSO: the
//      sizes Linux's mergeable-buffer estimate settles on), frames span buffers with
//      MRG_RXBUF (num_buffers). The driver reaps whole frames, checks length and tag, reposts
//      the buffers and re-arms used_event at once (NAPI re-enabling callbacks). The injector
//      (injector.h) feeds the tap from its kernel side.
#include "base/result.h"
#include "bench/net/workload.h"

namespace microvm::netbench {

[[nodiscard]] Result<RunResult> run_device(const RunOptions& options, const Workload& w);

}  // namespace microvm::netbench
