// Costs of the virtqueue hot path and the virtio-blk parse, without KVM. Each iteration
// includes the driver side (writing descriptors, reading the used ring), so the numbers
// are an upper bound on the device-side cost per request.
#include <benchmark/benchmark.h>

#include "tests/testing/driver_queue.h"
#include "tests/testing/fake_memory.h"
#include "virtio/blk/blk_spec.h"
#include "virtio/blk/request.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

namespace microvm {
namespace {

using testing::DriverBuffer;
using testing::DriverQueue;

struct Setup {
  std::unique_ptr<GuestMemory> mem = testing::make_fake_memory(4 << 20);
  DriverQueue dq{*mem, 256, GuestAddress(0x1000)};
  Queue q;
  GuestAddress hdr{0x100000}, data{0x101000}, status{0x200000};
  explicit Setup(uint64_t features) : q(*Queue::create(dq.config(), features)) {
    (void)mem->write_obj(hdr, VirtioBlkOuthdr{VIRTIO_BLK_T_IN, 0, 8});
  }
  uint16_t add(uint32_t segments) {
    std::vector<DriverBuffer> bufs{{hdr, 16, false}};
    for (uint32_t i = 0; i < segments; ++i) bufs.push_back({data + 4096 * i, 4096, true});
    bufs.push_back({status, 1, true});
    return dq.add_chain(bufs);
  }
};

void BM_QueueRoundTrip(benchmark::State& state) {
  Setup s(state.range(1) ? feature_bit(VIRTIO_F_EVENT_IDX) : 0);
  uint32_t segments = static_cast<uint32_t>(state.range(0));
  for (auto _ : state) {
    s.add(segments);
    auto c = s.q.pop(*s.mem);
    benchmark::DoNotOptimize(c);
    (void)s.q.add_used(*s.mem, (*c)->head(), 1);
    benchmark::DoNotOptimize(s.q.needs_notification(*s.mem));
    s.dq.next_used();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueRoundTrip)->ArgsProduct({{1, 8, 64}, {0, 1}})->ArgNames({"segments", "event_idx"});

void BM_BlkParse(benchmark::State& state) {
  Setup s(0);
  s.add(static_cast<uint32_t>(state.range(0)));
  auto c = s.q.pop(*s.mem);
  BlkLimits limits;
  limits.capacity_sectors = 1 << 20;
  BlkRequest req;
  for (auto _ : state) {
    auto r = parse_request(**c, limits, req);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(req.data.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BlkParse)->Arg(1)->Arg(8)->Arg(64)->ArgName("segments");

}  // namespace
}  // namespace microvm

BENCHMARK_MAIN();
