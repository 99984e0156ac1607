#include "cli/img/img_block_status.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "devices/block/file_io.h"

namespace microvm::img {

namespace {

// The status of one level at `g`, for at most `max` bytes (max > 0, g + max <= level size).
// `allocated` false means "look below".
struct LevelStatus {
  bool allocated = false, zero = false, data = false, has_offset = false;
  uint64_t offset = 0, length = 0;
};

}  // namespace

// Reads L1 entries straight from the (read-only, locked) file, 4 KiB at a time, to skip whole
// unallocated L2 ranges without asking the image for every cluster (a 1 PiB image is 16 Gi
// clusters).
class L1Reader {
 public:
  explicit L1Reader(const qcow2::Image& img) : img_(img) {}
  Result<uint64_t> entry(uint64_t index) {
    const auto& h = img_.header();
    if (index >= h.l1_size) return 0;
    uint64_t chunk = index / 512;
    if (chunk != chunk_) {
      uint64_t first = chunk * 512, n = std::min<uint64_t>(512, h.l1_size - first);
      buf_.assign(4096, 0);
      if (int rc = pread_full(img_.fd(), buf_.data(), n * 8, h.l1_table_offset + first * 8))
        return fail_errno(-rc, "read L1 table");
      chunk_ = chunk;
    }
    return qcow2::be64(buf_.data() + (index % 512) * 8) & qcow2::kOffsetMask;
  }

 private:
  const qcow2::Image& img_;
  uint64_t chunk_ = UINT64_MAX;
  std::vector<uint8_t> buf_;
};

namespace {

bool whole_hole(int fd, uint64_t off, uint64_t len) {
  off_t d = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
  if (d < 0) return errno == ENXIO;  // no data from here to the end of the file
  return static_cast<uint64_t>(d) >= off + len;
}

Result<LevelStatus> qcow2_status(qcow2::Image& img, L1Reader& l1, uint64_t g, uint64_t max) {
  const uint64_t cs = img.cluster_size();
  const uint32_t l2_shift = img.header().cluster_bits * 2 - 3;
  LevelStatus st;
  uint64_t pos = g;
  while (pos < g + max) {
    uint64_t span_end = ((pos >> l2_shift) + 1) << l2_shift;
    uint64_t step;
    LevelStatus c;
    if (TRY(l1.entry(pos >> l2_shift)) == 0) {
      step = std::min(span_end, g + max) - pos;  // no L2 table: all unallocated
    } else {
      step = std::min(cs - pos % cs, g + max - pos);
      qcow2::Mapping m = TRY(img.map(pos));
      using K = qcow2::Mapping::Kind;
      c.allocated = m.kind != K::kUnallocated;
      // A data cluster over a hole in the file reads as zeroes, and qemu-img reports it so
      // (metadata preallocation): whole clusters only, as the file is asked per cluster.
      c.zero = m.kind == K::kZero || (m.kind == K::kData && m.host_offset && whole_hole(img.fd(), m.host_offset, cs));
      c.data = m.kind == K::kData || m.kind == K::kCompressed;
      c.has_offset = (m.kind == K::kData || m.kind == K::kZero) && m.host_offset != 0;
      c.offset = c.has_offset ? m.host_offset + pos % cs : 0;
    }
    if (pos == g) {
      st = c;
    } else if (c.allocated != st.allocated || c.zero != st.zero || c.data != st.data || c.has_offset != st.has_offset ||
               (c.has_offset && c.offset != st.offset + st.length)) {
      break;
    }
    st.length += step;
    pos += step;
  }
  return st;
}

// Raw files: data and holes as the filesystem reports them (SEEK_DATA/SEEK_HOLE), as qemu's
// file driver does. Every byte of a raw file is "allocated", holes read as zeroes.
Result<LevelStatus> raw_status(int fd, uint64_t g, uint64_t max) {
  LevelStatus st;
  st.allocated = st.has_offset = true;
  st.offset = g;
  off_t data = ::lseek(fd, static_cast<off_t>(g), SEEK_DATA);
  if (data < 0 && errno != ENXIO) {
    st.data = true;  // no hole information: all data, as qemu assumes
    st.length = max;
    return st;
  }
  if (data < 0 || static_cast<uint64_t>(data) > g) {
    st.zero = true;
    st.length = data < 0 ? max : std::min<uint64_t>(max, static_cast<uint64_t>(data) - g);
    return st;
  }
  off_t hole = ::lseek(fd, static_cast<off_t>(g), SEEK_HOLE);
  st.data = true;
  st.length = hole < 0 ? max : std::min<uint64_t>(max, static_cast<uint64_t>(hole) - g);
  if (st.length == 0) st.length = max;
  return st;
}

}  // namespace

ChainStatus::ChainStatus(std::vector<ChainLevel>& chain) : chain_(chain) {
  for (auto& l : chain_) l1_.emplace_back(l.qcow2 ? new L1Reader(*l.qcow2) : nullptr);
}

ChainStatus::~ChainStatus() = default;

Result<MapEntry> ChainStatus::status(uint64_t g, uint64_t max) {
  for (size_t d = 0; d < chain_.size(); ++d) {
    ChainLevel& l = chain_[d];
    LevelStatus s = l.qcow2 ? TRY(qcow2_status(*l.qcow2, *l1_[d], g, max)) : TRY(raw_status(l.raw.get(), g, max));
    MapEntry e{.start = g, .length = s.length, .depth = static_cast<int>(d)};
    if (s.allocated) {
      e.present = true;
      e.zero = s.zero;
      e.data = s.data;
      e.has_offset = s.has_offset;
      e.offset = s.offset;
      return e;
    }
    max = s.length;
    bool below = d + 1 < chain_.size() && g < chain_[d + 1].size;
    if (!below) {
      e.zero = true;  // reads as zeroes, from no image
      return e;
    }
    max = std::min(max, chain_[d + 1].size - g);
  }
  return fail(EIO, "backing chain walk ended without a status");  // unreachable
}

}  // namespace microvm::img
