#include "vmm/snapshot/memory_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fd.h"

namespace microvm::snapshot {
namespace {

constexpr uint64_t kPage = 4096;

bool page_is_zero(const std::byte* p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kPage; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    acc |= v;
  }
  return acc == 0;
}

Result<void> write_all(int fd, const std::byte* p, uint64_t n, uint64_t offset) {
  while (n) {
    ssize_t w = ::pwrite(fd, p, static_cast<size_t>(std::min<uint64_t>(n, 1u << 30)), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail_errno("writing the memory file");
    }
    p += w;
    n -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return {};
}

// Writes the non-zero pages of host range [p, p+len) to file offset `at`, coalescing runs.
Result<uint64_t> write_nonzero_pages(int fd, const std::byte* p, uint64_t len, uint64_t at) {
  uint64_t written = 0;
  uint64_t run_start = 0, run_len = 0;
  for (uint64_t off = 0; off < len; off += kPage) {
    if (!page_is_zero(p + off)) {
      if (!run_len) run_start = off;
      run_len += kPage;
      continue;
    }
    if (run_len) {
      TRY(write_all(fd, p + run_start, run_len, at + run_start));
      written += run_len;
      run_len = 0;
    }
  }
  if (run_len) {
    TRY(write_all(fd, p + run_start, run_len, at + run_start));
    written += run_len;
  }
  return written;
}

}  // namespace

Result<MemorySaveStats> save_memory(const GuestMemory& memory, const std::string& path) {
  // O_NOFOLLOW: a link planted at the path must not redirect the write (SECURITY.md).
  Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!out) return fail_errno("create memory file " + path);
  MemorySaveStats stats;
  stats.bytes_total = memory.total_size();
  if (::ftruncate(out.get(), static_cast<off_t>(stats.bytes_total)) < 0) return fail_errno("size memory file " + path);
  uint64_t file_offset = 0;
  for (const auto& r : memory.regions()) {
    if (r.fd >= 0) {
      // Only the memfd's data ranges: a hole was never touched by the guest.
      uint64_t pos = r.fd_offset;
      const uint64_t end = r.fd_offset + r.size;
      while (pos < end) {
        off_t data = ::lseek(r.fd, static_cast<off_t>(pos), SEEK_DATA);
        if (data < 0 && errno == ENXIO) break;
        if (data < 0) return fail_errno("SEEK_DATA on guest RAM");
        if (static_cast<uint64_t>(data) >= end) break;
        off_t hole = ::lseek(r.fd, data, SEEK_HOLE);
        if (hole < 0) return fail_errno("SEEK_HOLE on guest RAM");
        uint64_t from = static_cast<uint64_t>(data) & ~(kPage - 1);
        uint64_t to = std::min<uint64_t>(end, (static_cast<uint64_t>(hole) + kPage - 1) & ~(kPage - 1));
        stats.bytes_written += TRY(write_nonzero_pages(out.get(), r.host + (from - r.fd_offset), to - from,
                                                       file_offset + (from - r.fd_offset)));
        pos = to;
      }
    } else {
      stats.bytes_written += TRY(write_nonzero_pages(out.get(), r.host, r.size, file_offset));
    }
    file_offset += r.size;
  }
  return stats;
}

}  // namespace microvm::snapshot
