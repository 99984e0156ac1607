#include "devices/block/qcow2/qcow2_create.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/fd.h"
#include "devices/block/file_io.h"
#include "devices/block/qcow2/qcow2_image.h"
#include "devices/block/qcow2/refcount_codec.h"

namespace microvm::qcow2 {

Result<void> create_image(const std::string& path, const CreateOptions& o) {
  if (o.cluster_bits < kMinClusterBits || o.cluster_bits > kMaxClusterBits)
    return fail(EINVAL, "cluster_size must be a power of two between 512 and 2M");
  if (o.version != 2 && o.version != 3) return fail(EINVAL, "qcow2 version must be 2 (compat=0.10) or 3 (compat=1.1)");
  if (o.refcount_order > 6 || (o.version == 2 && o.refcount_order != 4))
    return fail(EINVAL, "refcount_bits must be a power of two up to 64 (16 for compat=0.10)");
  if (o.version == 2 && o.lazy_refcounts) return fail(EINVAL, "lazy_refcounts requires compat=1.1");
  if (o.version == 2 && o.compression_type != CompressionType::kZlib)
    return fail(EINVAL, "compression_type=zstd requires compat=1.1");
  if (o.size % 512) return fail(EINVAL, "image size must be a multiple of 512");
  if (o.size > kMaxVirtualSize) return fail(EINVAL, "image size is larger than 1 PiB");
  if (o.preallocation != Preallocation::kOff && !o.backing_file.empty())
    return fail(EINVAL, "preallocation and a backing file cannot be used together");
  if (o.backing_file.size() > 1023) return fail(EINVAL, "backing file name longer than 1023 bytes");
  // Checked before the file is touched, so a refused create destroys nothing.
  if (o.size > max_virtual_size(o.cluster_bits))
    return fail(EINVAL, "image size too large: " + max_size_message(o.cluster_bits));
  const uint64_t cs = 1ull << o.cluster_bits;

  Header h;
  h.version = o.version;
  h.cluster_bits = o.cluster_bits;
  h.refcount_order = o.refcount_order;
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = 1;
  if (o.lazy_refcounts) h.compatible_features |= kCompatLazyRefcounts;
  h.compression_type = o.compression_type;
  if (o.compression_type != CompressionType::kZlib) h.incompatible_features |= kIncompatCompressionType;
  std::vector<uint8_t> c0(cs, 0);
  size_t pos = encode_header(h, c0.data());
  // Header extensions: backing format, then the end marker; the backing name follows.
  if (!o.backing_format.empty()) {
    put_be32(c0.data() + pos, kExtBackingFormat);
    put_be32(c0.data() + pos + 4, static_cast<uint32_t>(o.backing_format.size()));
    std::memcpy(c0.data() + pos + 8, o.backing_format.data(), o.backing_format.size());
    pos += 8 + ((o.backing_format.size() + 7) & ~size_t{7});
  }
  pos += 8;  // end of extensions (zeroes)
  if (!o.backing_file.empty()) {
    if (pos + o.backing_file.size() > cs) return fail(EINVAL, "backing file name does not fit in the header cluster");
    std::memcpy(c0.data() + pos, o.backing_file.data(), o.backing_file.size());
    put_be64(c0.data() + 8, pos);
    put_be32(c0.data() + 16, static_cast<uint32_t>(o.backing_file.size()));
  }
  std::vector<uint8_t> rt(cs, 0), rb(cs, 0);
  put_be64(rt.data(), 2 * cs);
  for (int c = 0; c < 3; ++c) rc_set(rb.data(), c, o.refcount_order, 1);

  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("create " + path);
  if (int rc = pwrite_full(fd.get(), c0.data(), cs, 0)) return fail_errno(-rc, "write " + path);
  if (int rc = pwrite_full(fd.get(), rt.data(), cs, cs)) return fail_errno(-rc, "write " + path);
  if (int rc = pwrite_full(fd.get(), rb.data(), cs, 2 * cs)) return fail_errno(-rc, "write " + path);
  Image::Options io;
  auto img = Image::open(std::move(fd), io);
  if (!img) return std::unexpected(img.error().context("create " + path));
  TRY((*img)->resize(o.size));
  if (o.preallocation != Preallocation::kOff)
    TRY((*img)->preallocate(o.preallocation == Preallocation::kFalloc, o.preallocation == Preallocation::kFull));
  if (int rc = (*img)->flush()) return fail_errno(-rc, "sync " + path);
  return {};
}

}  // namespace microvm::qcow2
