#pragma once
// GPT and MBR partition tables, read from untrusted image bytes. Every count, size and offset
// is checked against the image size; GPT header and entry CRCs are checked as the kernel checks them.
#include <cstdint>
#include <string>
#include <vector>

#include "boot/image_boot/image_reader.h"

namespace microvm::image_boot {

enum class TableKind { kNone, kGpt, kMbr };

struct Partition {
  unsigned number = 0;    // 1-based, as Linux numbers them (vda1) and GRUB (gpt1 / msdos1)
  uint64_t offset = 0;    // bytes from the start of the image
  uint64_t size = 0;      // bytes
  std::string part_uuid;  // what the kernel's root=PARTUUID= matches: GPT GUID, or MBR "SSSSSSSS-PP"
  std::string type;       // GPT type GUID, or MBR type as two hex digits
  bool esp = false;       // EFI system partition
};

struct PartitionTable {
  TableKind kind = TableKind::kNone;
  std::vector<Partition> partitions;  // in table order; empty with kNone (the whole disk is one file system)
};

constexpr unsigned kMaxPartitions = 128;

const char* table_kind_name(TableKind k);

// Reads the table at the start of `disk`. No table at all is not an error (kNone).
[[nodiscard]] Result<PartitionTable> read_partition_table(ImageReader& disk);

}  // namespace microvm::image_boot
