#include "devices/block/qcow2/qcow2_format.h"

#include <algorithm>
#include <cstring>

namespace microvm::qcow2 {

uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits) {
  uint64_t per_l2 = 1ull << (2 * cluster_bits - 3);  // bytes mapped by one L2 table
  return size / per_l2 + (size % per_l2 ? 1 : 0);
}

uint64_t max_virtual_size(uint32_t cluster_bits) {
  uint64_t per_l2 = 1ull << (2 * cluster_bits - 3);
  // kMaxL1Entries * per_l2 overflows for large clusters; those are bounded by kMaxVirtualSize.
  if (per_l2 > kMaxVirtualSize / kMaxL1Entries) return kMaxVirtualSize;
  return std::min<uint64_t>(uint64_t{kMaxL1Entries} * per_l2, kMaxVirtualSize);
}

std::string max_size_message(uint32_t cluster_bits) {
  uint64_t max = max_virtual_size(cluster_bits);
  std::string size = max % (1ull << 40) == 0 ? std::to_string(max >> 40) + " TiB" : std::to_string(max >> 30) + " GiB";
  return "the virtual size can be at most " + size + " with " + std::to_string(1u << cluster_bits) +
         "-byte clusters (the L1 table is limited to 32 MiB, as in QEMU); use larger clusters";
}

std::string incompatible_names(uint64_t bits) {
  static const char* const names[] = {"dirty", "corrupt", "external data file", "compression type", "extended L2"};
  std::string out;
  for (int i = 0; i < 64; ++i) {
    if (!(bits >> i & 1)) continue;
    if (!out.empty()) out += ", ";
    out += i < 5 ? names[i] : "bit " + std::to_string(i);
  }
  return out;
}

namespace {

std::unexpected<Error> field_error(const char* field, const std::string& what) {
  return fail(EINVAL, std::string("qcow2 header field ") + field + ": " + what);
}

// A table at [offset, offset+bytes) must be cluster aligned and inside the file.
Result<void> check_table(const char* field, uint64_t offset, uint64_t bytes, const Header& h, uint64_t file_size) {
  if (offset == 0) return field_error(field, "is zero (the table would overlap the header)");
  if (offset % h.cluster_size())
    return field_error(field, "offset " + std::to_string(offset) + " is not cluster aligned");
  if (offset > file_size || bytes > file_size - offset)
    return field_error(field, "table at " + std::to_string(offset) + " (" + std::to_string(bytes) +
                                  " bytes) extends past the end of the file (" + std::to_string(file_size) + " bytes)");
  return {};
}

}  // namespace

Result<Header> parse_header(std::span<const uint8_t> b, uint64_t file_size) {
  if (b.size() < kV2HeaderLength)
    return fail(EINVAL, "qcow2 header: file too small (" + std::to_string(b.size()) + " bytes)");
  const uint8_t* p = b.data();
  if (be32(p) != kMagic) return field_error("magic", "not a qcow2 image");
  Header h;
  h.version = be32(p + 4);
  if (h.version != 2 && h.version != 3)
    return field_error("version", std::to_string(h.version) + " is not supported (2 or 3)");
  h.backing_file_offset = be64(p + 8);
  h.backing_file_size = be32(p + 16);
  h.cluster_bits = be32(p + 20);
  h.size = be64(p + 24);
  h.crypt_method = be32(p + 32);
  h.l1_size = be32(p + 36);
  h.l1_table_offset = be64(p + 40);
  h.refcount_table_offset = be64(p + 48);
  h.refcount_table_clusters = be32(p + 56);
  h.nb_snapshots = be32(p + 60);
  h.snapshots_offset = be64(p + 64);
  if (h.version == 2) {
    h.header_length = kV2HeaderLength;
    h.refcount_order = 4;
  } else {
    if (b.size() < kV3HeaderLength) return field_error("header_length", "file too small for a version 3 header");
    h.incompatible_features = be64(p + 72);
    h.compatible_features = be64(p + 80);
    h.autoclear_features = be64(p + 88);
    h.refcount_order = be32(p + 96);
    h.header_length = be32(p + 100);
    if (h.header_length < kV3HeaderLength)
      return field_error("header_length", std::to_string(h.header_length) + " is less than 104");
  }

  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    return field_error("cluster_bits", std::to_string(h.cluster_bits) + " is outside 9..21 (512 B to 2 MiB clusters)");
  const uint64_t cs = h.cluster_size();
  if (h.header_length > cs)
    return field_error("header_length", std::to_string(h.header_length) + " is larger than a cluster");
  if (h.header_length > b.size()) return field_error("header_length", "extends past the end of the file");
  if (h.header_length > kV3HeaderLength) {
    uint8_t ct = p[104];
    if (ct > 1) return field_error("compression_type", std::to_string(ct) + " is unknown (0 zlib, 1 zstd)");
    h.compression_type = static_cast<CompressionType>(ct);
  }
  if (h.crypt_method != 0)
    return field_error("crypt_method", std::to_string(h.crypt_method) + ": encrypted images are not supported");
  uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown) return field_error("incompatible_features", "unknown feature bits set: " + incompatible_names(unknown));
  if (h.incompatible_features & kIncompatExternalData)
    return field_error("incompatible_features", "external data files are not supported");
  if (h.incompatible_features & kIncompatExtendedL2)
    return field_error("incompatible_features", "extended L2 entries (subclusters) are not supported");
  bool ct_bit = h.incompatible_features & kIncompatCompressionType;
  if (ct_bit != (h.compression_type != CompressionType::kZlib))
    return field_error("compression_type", "does not agree with the compression type feature bit");
  if (h.refcount_order > 6)
    return field_error("refcount_order", std::to_string(h.refcount_order) + " is larger than 6 (64-bit refcounts)");
  if (h.size > kMaxVirtualSize) return field_error("size", std::to_string(h.size) + " is larger than 1 PiB");
  if (h.size % 512) return field_error("size", std::to_string(h.size) + " is not a multiple of 512");

  // L1 table.
  if (h.l1_size > kMaxL1Entries) return field_error("l1_size", std::to_string(h.l1_size) + " entries is too large");
  if (h.l1_size < l1_entries_for(h.size, h.cluster_bits))
    return field_error("l1_size",
                       std::to_string(h.l1_size) + " entries cannot map the virtual size " + std::to_string(h.size));
  if (h.l1_size) TRY(check_table("l1_table_offset", h.l1_table_offset, uint64_t{h.l1_size} * 8, h, file_size));

  // Refcount table.
  if (h.refcount_table_clusters == 0) return field_error("refcount_table_clusters", "is zero");
  uint64_t rt_bytes = uint64_t{h.refcount_table_clusters} << h.cluster_bits;
  if (rt_bytes > kMaxRefcountTableBytes)
    return field_error("refcount_table_clusters", std::to_string(h.refcount_table_clusters) + " is too large");
  TRY(check_table("refcount_table_offset", h.refcount_table_offset, rt_bytes, h, file_size));

  if (h.nb_snapshots > 65536) return field_error("nb_snapshots", std::to_string(h.nb_snapshots) + " is too large");
  if (h.nb_snapshots && (h.snapshots_offset % cs || h.snapshots_offset >= file_size))
    return field_error("snapshots_offset", "is unaligned or past the end of the file");

  // Backing file name: inside the first cluster, at most 1023 bytes.
  if (h.backing_file_offset) {
    if (h.backing_file_size == 0 || h.backing_file_size > 1023)
      return field_error("backing_file_size", std::to_string(h.backing_file_size) + " is outside 1..1023");
    if (h.backing_file_offset > cs || h.backing_file_size > cs - h.backing_file_offset ||
        h.backing_file_offset + h.backing_file_size > b.size())
      return field_error("backing_file_offset", "the name is not inside the first cluster of the file");
    h.backing_file.assign(reinterpret_cast<const char*>(p + h.backing_file_offset), h.backing_file_size);
    if (h.backing_file.find('\0') != std::string::npos)
      return field_error("backing_file_offset", "the name contains a NUL byte");
  }

  // Header extensions, between header_length and the end of the first cluster (or the
  // backing file name).
  uint64_t pos = h.header_length;
  uint64_t end = std::min<uint64_t>(b.size(), h.backing_file_offset ? h.backing_file_offset : cs);
  while (pos + 8 <= end) {
    uint32_t type = be32(p + pos), len = be32(p + pos + 4);
    pos += 8;
    if (type == kExtEnd) break;
    if (len > end - pos)
      return field_error("header extension", "length " + std::to_string(len) + " overruns the header cluster");
    if (type == kExtBackingFormat) {
      h.backing_format.assign(reinterpret_cast<const char*>(p + pos), len);
      if (h.backing_format.find('\0') != std::string::npos) h.backing_format.resize(h.backing_format.find('\0'));
    } else if (type == kExtExternalDataFile) {
      return field_error("header extension", "external data file is not supported");
    }
    pos += (uint64_t{len} + 7) & ~7ull;
  }
  return h;
}

size_t encode_header(const Header& h, uint8_t* p) {
  size_t len = h.version == 2 ? kV2HeaderLength : 112;
  std::memset(p, 0, len);
  put_be32(p, kMagic);
  put_be32(p + 4, h.version);
  put_be64(p + 8, h.backing_file_offset);
  put_be32(p + 16, h.backing_file_size);
  put_be32(p + 20, h.cluster_bits);
  put_be64(p + 24, h.size);
  put_be32(p + 32, h.crypt_method);
  put_be32(p + 36, h.l1_size);
  put_be64(p + 40, h.l1_table_offset);
  put_be64(p + 48, h.refcount_table_offset);
  put_be32(p + 56, h.refcount_table_clusters);
  put_be32(p + 60, h.nb_snapshots);
  put_be64(p + 64, h.snapshots_offset);
  if (h.version == 3) {
    put_be64(p + 72, h.incompatible_features);
    put_be64(p + 80, h.compatible_features);
    put_be64(p + 88, h.autoclear_features);
    put_be32(p + 96, h.refcount_order);
    put_be32(p + 100, 112);
    p[104] = static_cast<uint8_t>(h.compression_type);
  }
  return len;
}

}  // namespace microvm::qcow2
