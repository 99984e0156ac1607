#include "boot/image_boot/partition_table.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>

#include "boot/image_boot/byte_order.h"

namespace microvm::image_boot {
namespace {

constexpr uint64_t kSector = 512;  // 4 KiB-sector GPTs are recognised and refused (read_gpt)
constexpr uint32_t kMaxGptEntrySize = 4096;

uint32_t crc32_of(std::span<const std::byte> b) {
  return static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size())));
}

// GUIDs are stored with their first three fields little-endian.
std::string guid_string(std::span<const std::byte> g) {
  char s[37];
  std::snprintf(s, sizeof s, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", le32(g, 0), le16(g, 4), le16(g, 6),
                unsigned(g[8]), unsigned(g[9]), unsigned(g[10]), unsigned(g[11]), unsigned(g[12]), unsigned(g[13]),
                unsigned(g[14]), unsigned(g[15]));
  return s;
}

bool all_zero(std::span<const std::byte> b) {
  for (auto x : b)
    if (x != std::byte{0}) return false;
  return true;
}

Result<PartitionTable> read_gpt(ImageReader& disk) {
  std::array<std::byte, kSector> hdr;
  TRY(disk.read_at(kSector, hdr));
  if (std::memcmp(hdr.data(), "EFI PART", 8) != 0) {
    // A disk with 4 KiB logical sectors keeps its header at byte 4096. microvm's virtio-blk
    // presents 512-byte sectors, so the guest kernel could not read that table either.
    std::array<std::byte, 8> sig4k{};
    if (disk.size() >= 4096 + 8 && disk.read_at(4096, sig4k) && std::memcmp(sig4k.data(), "EFI PART", 8) == 0)
      return fail(ENOTSUP,
                  "the GPT is laid out for 4096-byte sectors; microvm presents 512-byte sectors to the guest, "
                  "which could not read it (convert the image, or give --kernel and root=)");
    return fail(EINVAL, "protective MBR but no GPT header at LBA 1");
  }
  uint32_t header_size = le32(hdr, 12);
  if (header_size < 92 || header_size > kSector)
    return fail(EINVAL, "GPT header size " + std::to_string(header_size) + " is invalid");
  uint32_t want_crc = le32(hdr, 16);
  std::array<std::byte, kSector> copy = hdr;
  std::memset(copy.data() + 16, 0, 4);
  if (crc32_of(std::span(copy).first(header_size)) != want_crc) return fail(EINVAL, "GPT header checksum mismatch");
  uint64_t entries_lba = le64(hdr, 72);
  uint32_t count = le32(hdr, 80), entry_size = le32(hdr, 84), entries_crc = le32(hdr, 88);
  if (entry_size < 128 || entry_size > kMaxGptEntrySize || entry_size % 8 != 0)
    return fail(EINVAL, "GPT entry size " + std::to_string(entry_size) + " is invalid");
  if (count > 1024) return fail(EINVAL, "GPT claims " + std::to_string(count) + " entries (more than 1024)");
  uint64_t bytes = uint64_t(count) * entry_size;
  if (entries_lba < 2 || entries_lba > disk.size() / kSector || bytes > disk.size() - entries_lba * kSector)
    return fail(EINVAL, "GPT entry array lies outside the image");
  std::vector<std::byte> entries(bytes);
  TRY(disk.read_at(entries_lba * kSector, entries));
  if (crc32_of(entries) != entries_crc) return fail(EINVAL, "GPT entry array checksum mismatch");

  PartitionTable t;
  t.kind = TableKind::kGpt;
  uint64_t disk_sectors = disk.size() / kSector;
  for (uint32_t i = 0; i < count; ++i) {
    std::span<const std::byte> e(entries.data() + uint64_t(i) * entry_size, entry_size);
    if (all_zero(e.first(16))) continue;  // unused slot
    uint64_t first = le64(e, 32), last = le64(e, 40);
    if (first > last || last >= disk_sectors) continue;  // a partition the kernel could not use either
    if (t.partitions.size() >= kMaxPartitions) break;
    Partition p;
    p.number = i + 1;
    p.offset = first * kSector;
    p.size = (last - first + 1) * kSector;
    p.type = guid_string(e.first(16));
    p.part_uuid = guid_string(e.subspan(16, 16));
    p.esp = p.type == "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
    t.partitions.push_back(std::move(p));
  }
  return t;
}

bool is_extended(uint8_t type) { return type == 0x05 || type == 0x0f || type == 0x85; }

// Logical partitions: a chain of extended boot records inside the extended partition, each
// with one data entry (its start relative to that record) and a link to the next record
// (relative to the extended partition's start). Numbered from 5 in chain order, as Linux
// does. The chain comes from the image: every record must lie inside the extended partition,
// a record seen twice ends it (a loop), and it is at most kMaxPartitions long.
template <class Add>
Result<void> read_logical(ImageReader& disk, uint64_t ext_start, uint64_t ext_count, Add add) {
  std::vector<uint64_t> seen;
  uint64_t ebr = ext_start;
  unsigned number = 5;
  while (seen.size() < kMaxPartitions) {
    if (std::find(seen.begin(), seen.end(), ebr) != seen.end()) break;
    seen.push_back(ebr);
    std::array<std::byte, kSector> rec;
    TRY(disk.read_at(ebr * kSector, rec));
    if (rec[510] != std::byte{0x55} || rec[511] != std::byte{0xaa}) break;
    std::optional<uint64_t> next;
    for (int i = 0; i < 4; ++i) {
      size_t at = 446 + 16 * i;
      auto type = static_cast<uint8_t>(rec[at + 4]);
      uint64_t start = le32(rec, at + 8), count = le32(rec, at + 12);
      if (type == 0 || count == 0) continue;
      if (is_extended(type)) {
        if (!next && start < ext_count) next = ext_start + start;
        continue;
      }
      uint64_t first = ebr + start;
      // Inside the extended partition, or the kernel would not use it either.
      if (start == 0 || first >= ext_start + ext_count || count > ext_start + ext_count - first) continue;
      if (!add(number++, type, first, count)) return {};
    }
    if (!next) break;
    ebr = *next;
  }
  return {};
}

}  // namespace

const char* table_kind_name(TableKind k) {
  switch (k) {
    case TableKind::kGpt:
      return "gpt";
    case TableKind::kMbr:
      return "mbr";
    case TableKind::kNone:
      break;
  }
  return "none";
}

Result<PartitionTable> read_partition_table(ImageReader& disk) {
  PartitionTable none;
  if (disk.size() < kSector) return none;
  std::array<std::byte, kSector> mbr;
  TRY(disk.read_at(0, mbr));
  if (mbr[510] != std::byte{0x55} || mbr[511] != std::byte{0xaa}) return none;
  // A FAT or NTFS boot sector also ends in 55 aa; a partition table's status bytes are 0 or 0x80.
  for (int i = 0; i < 4; ++i) {
    auto status = static_cast<uint8_t>(mbr[446 + 16 * i]);
    if (status != 0 && status != 0x80) return none;
  }
  for (int i = 0; i < 4; ++i)
    if (static_cast<uint8_t>(mbr[446 + 16 * i + 4]) == 0xee) return read_gpt(disk);

  PartitionTable t;
  t.kind = TableKind::kMbr;
  uint32_t signature = le32(mbr, 440);
  uint64_t disk_sectors = disk.size() / kSector;
  auto add = [&](unsigned number, uint8_t type, uint64_t start, uint64_t count) {
    if (t.partitions.size() >= kMaxPartitions) return false;
    Partition p;
    p.number = number;
    p.offset = start * kSector;
    p.size = count * kSector;
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08x-%02x", signature, number);  // as the kernel's PARTUUID
    p.part_uuid = buf;
    std::snprintf(buf, sizeof buf, "%02x", type);
    p.type = buf;
    p.esp = type == 0xef;
    t.partitions.push_back(std::move(p));
    return true;
  };
  std::optional<std::pair<uint64_t, uint64_t>> extended;
  for (int i = 0; i < 4; ++i) {
    size_t at = 446 + 16 * i;
    auto type = static_cast<uint8_t>(mbr[at + 4]);
    uint64_t start = le32(mbr, at + 8), count = le32(mbr, at + 12);
    if (type == 0 || count == 0) continue;
    if (start == 0 || start >= disk_sectors || count > disk_sectors - start) continue;
    if (is_extended(type)) {
      if (!extended) extended = std::pair{start, count};  // the kernel reads the first one only
      continue;
    }
    add(unsigned(i + 1), type, start, count);
  }
  if (extended) TRY(read_logical(disk, extended->first, extended->second, add));
  if (t.partitions.empty()) return none;
  return t;
}

}  // namespace microvm::image_boot
