#pragma once
// Pure parsers for what the balloon driver puts in its queues. No memory is released here:
// the device turns the parsed ranges into GuestMemory::discard() calls. Everything the
// guest wrote is copied out once and then checked.
#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <vector>

#include "base/result.h"
#include "virtio/balloon/balloon_spec.h"
#include "virtio/descriptor_chain.h"

namespace microvm {

// A guest-physical range made of whole balloon pages.
struct BalloonRange {
  uint64_t gpa = 0;
  uint64_t len = 0;
};

enum class BalloonReject {
  kNoData,     // no device-readable bytes
  kUnaligned,  // not a whole number of 4-byte PFNs / 10-byte statistics
  kTooLarge,   // more PFNs or statistics than the device accepts in one chain
  kWritable,   // an inflate/deflate/stats chain with device-writable buffers
};
const char* to_string(BalloonReject r);

// Reads the inflate/deflate chain's PFN array (le32 each, §5.5.6) and merges neighbouring
// pages into ranges, in the driver's order. At most `max_pfns` PFNs.
[[nodiscard]] std::expected<std::vector<BalloonRange>, BalloonReject> parse_pfn_chain(const DescriptorChain& chain,
                                                                                      uint32_t max_pfns);

// The latest value of each statistic the driver reported; unset when it never sent the tag.
struct BalloonStatsSnapshot {
  std::array<std::optional<uint64_t>, VIRTIO_BALLOON_S_NR> values{};
  uint32_t unknown_tags = 0;  // tags past the ones we know: counted, ignored (§5.5.6.3)
};

// Reads a stats buffer: a packed array of {le16 tag, le64 val}. At most `max_entries`.
// Later duplicates of a tag win, as the spec has the latest value count.
[[nodiscard]] std::expected<BalloonStatsSnapshot, BalloonReject> parse_stats_chain(const DescriptorChain& chain,
                                                                                   uint32_t max_entries);

}  // namespace microvm
