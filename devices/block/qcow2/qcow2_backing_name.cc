#include "devices/block/qcow2/qcow2_backing_name.h"

#include <sys/stat.h>

#include <cstring>
#include <vector>

#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_header_io.h"

namespace microvm::qcow2 {

Result<void> set_backing_name(int fd, const std::string& name, const std::string& format) {
  if (name.size() > 1023) return fail(EINVAL, "backing file name longer than 1023 bytes");
  if (name.find('\0') != std::string::npos || format.find('\0') != std::string::npos)
    return fail(EINVAL, "backing file name or format contains a NUL byte");
  const HeaderCluster head = TRY(read_header_cluster(fd));
  const std::vector<uint8_t>& old = head.bytes;
  const Header& h = head.header;
  const uint64_t cs = h.cluster_size();

  // The fixed header as it is (only the two backing fields change), then every extension
  // except the old backing format, the new one, the end marker and the name.
  std::vector<uint8_t> out(old.begin(), old.begin() + h.header_length);
  uint64_t pos = h.header_length;
  uint64_t end = std::min<uint64_t>(old.size(), h.backing_file_offset ? h.backing_file_offset : cs);
  while (pos + 8 <= end) {
    uint32_t type = be32(&old[pos]), len = be32(&old[pos + 4]);
    if (type == kExtEnd) break;
    uint64_t padded = (uint64_t{len} + 7) & ~7ull;
    if (padded > end - pos - 8) return fail(EINVAL, "header extension overruns the header cluster");
    if (type != kExtBackingFormat) out.insert(out.end(), old.begin() + pos, old.begin() + pos + 8 + padded);
    pos += 8 + padded;
  }
  auto put_ext = [&](uint32_t type, const std::string& data) {
    size_t at = out.size();
    out.resize(at + 8 + ((data.size() + 7) & ~size_t{7}), 0);
    put_be32(&out[at], type);
    put_be32(&out[at + 4], static_cast<uint32_t>(data.size()));
    std::memcpy(&out[at + 8], data.data(), data.size());
  };
  if (!name.empty() && !format.empty()) put_ext(kExtBackingFormat, format);
  out.resize(out.size() + 8, 0);  // end of extensions
  uint64_t name_off = name.empty() ? 0 : out.size();
  out.insert(out.end(), name.begin(), name.end());
  if (out.size() > cs) return fail(ENOSPC, "the backing file name does not fit in the header cluster");
  put_be64(&out[8], name_off);
  put_be32(&out[16], static_cast<uint32_t>(name.size()));
  // Clear what the old extensions and name occupied beyond the new end, within the cluster.
  uint64_t old_end = std::max<uint64_t>(pos + 8, h.backing_file_offset + h.backing_file_size);
  if (old_end > out.size()) out.resize(std::min<uint64_t>(old_end, cs), 0);
  if (int rc = pwrite_full(fd, out.data(), out.size(), 0)) return fail_errno(-rc, "write header");
  if (int rc = fdatasync_retry(fd)) return fail_errno(-rc, "sync header");
  return {};
}

}  // namespace microvm::qcow2
