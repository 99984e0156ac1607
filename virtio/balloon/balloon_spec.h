#pragma once
// virtio-balloon constants and structures (virtio 1.2 §5.5), under their spec names.
#include <cstdint>

namespace microvm {

// Feature bits (§5.5.3).
inline constexpr unsigned VIRTIO_BALLOON_F_MUST_TELL_HOST = 0;
inline constexpr unsigned VIRTIO_BALLOON_F_STATS_VQ = 1;
inline constexpr unsigned VIRTIO_BALLOON_F_DEFLATE_ON_OOM = 2;
inline constexpr unsigned VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3;
inline constexpr unsigned VIRTIO_BALLOON_F_PAGE_POISON = 4;
inline constexpr unsigned VIRTIO_BALLOON_F_PAGE_REPORTING = 5;

// Balloon pages are always 4 KiB, whatever the guest's page size (§5.5.6).
inline constexpr unsigned VIRTIO_BALLOON_PFN_SHIFT = 12;
inline constexpr uint64_t kBalloonPageSize = uint64_t{1} << VIRTIO_BALLOON_PFN_SHIFT;

// Configuration layout (§5.5.4): the device writes num_pages (the target), the driver
// writes actual (what it holds).
struct VirtioBalloonConfig {
  uint32_t num_pages;
  uint32_t actual;
  uint32_t free_page_hint_cmd_id;
  uint32_t poison_val;
};
static_assert(sizeof(VirtioBalloonConfig) == 16);
inline constexpr uint64_t kBalloonConfigNumPages = 0;
inline constexpr uint64_t kBalloonConfigActual = 4;

// Statistics tags (§5.5.6.3; 10 and up were added after 1.2 and are what Linux 6.x sends).
enum BalloonStatTag : uint16_t {
  VIRTIO_BALLOON_S_SWAP_IN = 0,
  VIRTIO_BALLOON_S_SWAP_OUT = 1,
  VIRTIO_BALLOON_S_MAJFLT = 2,
  VIRTIO_BALLOON_S_MINFLT = 3,
  VIRTIO_BALLOON_S_MEMFREE = 4,
  VIRTIO_BALLOON_S_MEMTOT = 5,
  VIRTIO_BALLOON_S_AVAIL = 6,
  VIRTIO_BALLOON_S_CACHES = 7,
  VIRTIO_BALLOON_S_HTLB_PGALLOC = 8,
  VIRTIO_BALLOON_S_HTLB_PGFAIL = 9,
  VIRTIO_BALLOON_S_OOM_KILL = 10,
  VIRTIO_BALLOON_S_ALLOC_STALL = 11,
  VIRTIO_BALLOON_S_ASYNC_SCAN = 12,
  VIRTIO_BALLOON_S_DIRECT_SCAN = 13,
  VIRTIO_BALLOON_S_ASYNC_RECLAIM = 14,
  VIRTIO_BALLOON_S_DIRECT_RECLAIM = 15,
  VIRTIO_BALLOON_S_NR = 16,
};

// One statistic as the driver lays it out: packed, 10 bytes.
struct __attribute__((packed)) VirtioBalloonStat {
  uint16_t tag;
  uint64_t val;
};
static_assert(sizeof(VirtioBalloonStat) == 10);

}  // namespace microvm
