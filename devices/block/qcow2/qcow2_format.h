#pragma once
// The qcow2 on-disk format (docs/interop/qcow2.txt in QEMU): constants, the header and its
// validation. Everything on disk is big-endian.
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/big_endian.h"
#include "base/result.h"

namespace microvm::qcow2 {

// Everything on disk is big-endian; callers name these qcow2::be32 and so on.
using microvm::be16;
using microvm::be32;
using microvm::be64;
using microvm::put_be16;
using microvm::put_be32;
using microvm::put_be64;

constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
constexpr uint32_t kMinClusterBits = 9;
constexpr uint32_t kMaxClusterBits = 21;               // 2 MiB
constexpr uint64_t kMaxVirtualSize = 1ull << 50;       // 1 PiB
constexpr uint32_t kMaxL1Entries = 32u << 20 >> 3;     // 32 MiB of L1, as QEMU
constexpr uint64_t kMaxRefcountTableBytes = 8u << 20;  // as QEMU
constexpr uint32_t kV2HeaderLength = 72;
constexpr uint32_t kV3HeaderLength = 104;

// Incompatible feature bits.
constexpr uint64_t kIncompatDirty = 1ull << 0;
constexpr uint64_t kIncompatCorrupt = 1ull << 1;
constexpr uint64_t kIncompatExternalData = 1ull << 2;
constexpr uint64_t kIncompatCompressionType = 1ull << 3;
constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
constexpr uint64_t kIncompatKnown =
    kIncompatDirty | kIncompatCorrupt | kIncompatExternalData | kIncompatCompressionType | kIncompatExtendedL2;
constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;

// Header extension types.
constexpr uint32_t kExtEnd = 0;
constexpr uint32_t kExtBackingFormat = 0xe2792aca;
constexpr uint32_t kExtFeatureTable = 0x6803f857;
constexpr uint32_t kExtExternalDataFile = 0x44415441;

// Table entries.
constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ull;  // bits 9..55
constexpr uint64_t kCopied = 1ull << 63;
constexpr uint64_t kCompressed = 1ull << 62;
constexpr uint64_t kZeroFlag = 1ull << 0;
constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;          // bits 0-8 and 56-62
constexpr uint64_t kL2StandardReservedMask = 0x3f000000000001feull;  // bits 1-8, 56-61

enum class CompressionType : uint8_t { kZlib = 0, kZstd = 1 };

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV3HeaderLength;
  CompressionType compression_type = CompressionType::kZlib;

  // From header extensions.
  std::string backing_file;    // as stored; never opened unless the user opts in
  std::string backing_format;  // "raw", "qcow2", or empty

  uint64_t cluster_size() const { return 1ull << cluster_bits; }
  uint64_t l2_entries() const { return cluster_size() / 8; }
  uint32_t refcount_bits() const { return 1u << refcount_order; }
  uint64_t refcount_block_entries() const { return cluster_size() * 8 / refcount_bits(); }
};

// Number of L1 entries needed to map `size` bytes with 2^cluster_bits clusters.
uint64_t l1_entries_for(uint64_t size, uint32_t cluster_bits);
// The largest virtual size whose L1 table fits kMaxL1Entries (and at most kMaxVirtualSize).
uint64_t max_virtual_size(uint32_t cluster_bits);
// "the virtual size can be at most 128 GiB with 512-byte clusters (...)", for errors.
std::string max_size_message(uint32_t cluster_bits);

// Parses and validates the header in `head` (the first cluster of the file, or as much of it
// as the file has) against the file size. Every error names the offending field.
[[nodiscard]] Result<Header> parse_header(std::span<const uint8_t> head, uint64_t file_size);

// Serializes the fixed header (v2: 72 bytes, v3: 112 bytes incl. compression type + padding).
size_t encode_header(const Header& h, uint8_t* out);

// Names of set incompatible bits ("dirty", "corrupt", "bit 7", ...), comma-separated.
std::string incompatible_names(uint64_t bits);

}  // namespace microvm::qcow2
