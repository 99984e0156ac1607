#include "devices/block/qcow2/qcow2_header_io.h"

#include <sys/stat.h>

#include <algorithm>

#include "devices/block/file_io.h"

namespace microvm::qcow2 {

Result<HeaderCluster> read_header_cluster(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("stat");
  HeaderCluster c;
  c.file_size = static_cast<uint64_t>(st.st_size);
  c.bytes.resize(std::min<uint64_t>(c.file_size, 1u << kMaxClusterBits));
  if (int rc = pread_full(fd, c.bytes.data(), c.bytes.size(), 0)) return fail_errno(-rc, "read header");
  c.header = TRY(parse_header(c.bytes, c.file_size));
  if (c.bytes.size() < std::min<uint64_t>(c.header.cluster_size(), c.file_size))
    return fail(EINVAL, "short header cluster");
  return c;
}

}  // namespace microvm::qcow2
