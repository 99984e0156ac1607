#include "virtio/balloon/request.h"

#include <cstring>

namespace microvm {

const char* to_string(BalloonReject r) {
  switch (r) {
    case BalloonReject::kNoData:
      return "no device-readable data";
    case BalloonReject::kUnaligned:
      return "length is not a whole number of entries";
    case BalloonReject::kTooLarge:
      return "too many entries in one chain";
    case BalloonReject::kWritable:
      return "unexpected device-writable buffer";
  }
  return "unknown";
}

std::expected<std::vector<BalloonRange>, BalloonReject> parse_pfn_chain(const DescriptorChain& chain,
                                                                        uint32_t max_pfns) {
  if (chain.writable_bytes() != 0) return std::unexpected(BalloonReject::kWritable);
  uint64_t bytes = chain.readable_bytes();
  if (bytes == 0) return std::unexpected(BalloonReject::kNoData);
  if (bytes % sizeof(uint32_t)) return std::unexpected(BalloonReject::kUnaligned);
  if (bytes / sizeof(uint32_t) > max_pfns) return std::unexpected(BalloonReject::kTooLarge);
  std::vector<BalloonRange> out;
  Reader r = chain.reader();
  for (uint64_t i = 0; i < bytes / sizeof(uint32_t); ++i) {
    auto pfn = r.read_obj<uint32_t>();
    if (!pfn) return std::unexpected(BalloonReject::kUnaligned);  // cannot happen: length checked
    uint64_t gpa = uint64_t{*pfn} << VIRTIO_BALLOON_PFN_SHIFT;    // < 2^44: no overflow
    if (!out.empty() && out.back().gpa + out.back().len == gpa) {
      out.back().len += kBalloonPageSize;
    } else {
      out.push_back({gpa, kBalloonPageSize});
    }
  }
  return out;
}

std::expected<BalloonStatsSnapshot, BalloonReject> parse_stats_chain(const DescriptorChain& chain,
                                                                     uint32_t max_entries) {
  if (chain.writable_bytes() != 0) return std::unexpected(BalloonReject::kWritable);
  uint64_t bytes = chain.readable_bytes();
  // An empty buffer is legal only as the driver's very first one, which Linux fills anyway.
  if (bytes == 0) return std::unexpected(BalloonReject::kNoData);
  if (bytes % sizeof(VirtioBalloonStat)) return std::unexpected(BalloonReject::kUnaligned);
  if (bytes / sizeof(VirtioBalloonStat) > max_entries) return std::unexpected(BalloonReject::kTooLarge);
  BalloonStatsSnapshot s;
  Reader r = chain.reader();
  for (uint64_t i = 0; i < bytes / sizeof(VirtioBalloonStat); ++i) {
    auto st = r.read_obj<VirtioBalloonStat>();
    if (!st) return std::unexpected(BalloonReject::kUnaligned);
    uint16_t tag = st->tag;
    uint64_t val = st->val;
    if (tag < VIRTIO_BALLOON_S_NR)
      s.values[tag] = val;
    else
      ++s.unknown_tags;
  }
  return s;
}

}  // namespace microvm
