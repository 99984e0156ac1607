#pragma once
// A qcow2 image's internal snapshot table: parsing (`img snapshot -l`, `img info`, and the
// snapshot operations of Image) and encoding new entries. The table comes from a hostile file,
// so every count, length and offset is checked and a bad table is an error naming what is
// wrong, never an out-of-bounds read.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/block/qcow2/qcow2_format.h"

namespace microvm::qcow2 {

constexpr uint32_t kMaxSnapshots = 65536;                             // as QEMU
constexpr uint64_t kMaxSnapshotTableBytes = 1024ull * kMaxSnapshots;  // as QEMU (64 MiB)
constexpr uint32_t kMaxSnapshotExtraData = 1024;                      // as QEMU

struct SnapshotInfo {
  std::string id, name;
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  uint32_t date_sec = 0, date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t vm_state_size = 0;
  uint64_t disk_size = 0;
  bool has_disk_size = false;
  uint64_t icount = UINT64_MAX;  // UINT64_MAX: not recorded
  // Where the entry lies in the table, padding included (to drop or keep it byte for byte).
  uint64_t table_pos = 0, table_len = 0;
};

// The parsed entries plus the exact bytes of the table (the sum of the entries' lengths).
struct SnapshotTable {
  std::vector<SnapshotInfo> entries;
  std::vector<uint8_t> raw;
};

// Parses `count` entries from `table` (the bytes at the header's snapshots_offset).
[[nodiscard]] Result<std::vector<SnapshotInfo>> parse_snapshot_table(std::span<const uint8_t> table, uint32_t count);

// Reads and parses the table `h` points to in `fd` (`file_size` bytes long).
[[nodiscard]] Result<std::vector<SnapshotInfo>> read_snapshots(int fd, const Header& h, uint64_t file_size);
[[nodiscard]] Result<SnapshotTable> read_snapshot_table(int fd, const Header& h, uint64_t file_size);

// One entry as QEMU 7.2 writes it: 24 bytes of extra data (vm_state_size_large, disk_size,
// icount), then ID and name, padded to 8 bytes. Fails for an ID or name over 65535 bytes.
[[nodiscard]] Result<std::vector<uint8_t>> encode_snapshot_entry(const SnapshotInfo& s);

}  // namespace microvm::qcow2
