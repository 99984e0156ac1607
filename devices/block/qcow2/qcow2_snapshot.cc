#include "devices/block/qcow2/qcow2_snapshot.h"

#include <algorithm>

#include "devices/block/file_io.h"

namespace microvm::qcow2 {

namespace {

constexpr uint64_t kEntryFixed = 40;  // bytes before the extra data

Result<std::vector<SnapshotInfo>> bad(uint32_t i, const std::string& what) {
  return fail(EINVAL, "snapshot table entry " + std::to_string(i) + ": " + what);
}

}  // namespace

Result<std::vector<SnapshotInfo>> parse_snapshot_table(std::span<const uint8_t> t, uint32_t count) {
  if (count > kMaxSnapshots)
    return fail(EINVAL, "snapshot table: " + std::to_string(count) + " snapshots (at most 65536)");
  std::vector<SnapshotInfo> out;
  uint64_t pos = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (t.size() < kEntryFixed || pos > t.size() - kEntryFixed) return bad(i, "truncated");
    const uint8_t* p = t.data() + pos;
    SnapshotInfo s;
    s.l1_table_offset = be64(p);
    s.l1_size = be32(p + 8);
    const uint16_t id_size = be16(p + 12), name_size = be16(p + 14);
    s.date_sec = be32(p + 16);
    s.date_nsec = be32(p + 20);
    s.vm_clock_nsec = be64(p + 24);
    s.vm_state_size = be32(p + 32);
    const uint32_t extra = be32(p + 36);
    if (extra > kMaxSnapshotExtraData)
      return bad(i, "extra data of " + std::to_string(extra) + " bytes (at most 1024)");
    const uint64_t len = kEntryFixed + extra + id_size + name_size;
    if (len > t.size() - pos) return bad(i, "truncated");
    const uint8_t* x = p + kEntryFixed;
    if (extra >= 8) s.vm_state_size = be64(x);
    if (extra >= 16) s.disk_size = be64(x + 8), s.has_disk_size = true;
    if (extra >= 24) s.icount = be64(x + 16);
    s.id.assign(reinterpret_cast<const char*>(x + extra), id_size);
    s.name.assign(reinterpret_cast<const char*>(x + extra + id_size), name_size);
    if (s.id.find('\0') != std::string::npos || s.name.find('\0') != std::string::npos)
      return bad(i, "ID or name contains a NUL byte");
    if (s.l1_table_offset & 511) return bad(i, "L1 table offset is not aligned");
    s.table_pos = pos;
    s.table_len = std::min<uint64_t>((len + 7) & ~7ull, t.size() - pos);
    out.push_back(std::move(s));
    pos += (len + 7) & ~7ull;
  }
  return out;
}

Result<std::vector<SnapshotInfo>> read_snapshots(int fd, const Header& h, uint64_t file_size) {
  return TRY(read_snapshot_table(fd, h, file_size)).entries;
}

Result<SnapshotTable> read_snapshot_table(int fd, const Header& h, uint64_t file_size) {
  if (h.nb_snapshots == 0) return SnapshotTable{};
  if (h.nb_snapshots > kMaxSnapshots)
    return fail(EINVAL, "nb_snapshots " + std::to_string(h.nb_snapshots) + " is over 65536");
  if (h.snapshots_offset % h.cluster_size() || h.snapshots_offset >= file_size)
    return fail(EINVAL, "snapshots_offset is unaligned or past the end of the file");
  // The entries' real length is only known while parsing: read what the file and QEMU's cap
  // allow, and let the parser find truncation.
  const uint64_t n = std::min<uint64_t>(file_size - h.snapshots_offset, kMaxSnapshotTableBytes);
  std::vector<uint8_t> table(n);
  if (int rc = pread_full(fd, table.data(), n, h.snapshots_offset)) return fail_errno(-rc, "read snapshot table");
  SnapshotTable out;
  out.entries = TRY(parse_snapshot_table(table, h.nb_snapshots));
  const SnapshotInfo& last = out.entries.back();
  table.resize(last.table_pos + last.table_len);
  out.raw = std::move(table);
  return out;
}

Result<std::vector<uint8_t>> encode_snapshot_entry(const SnapshotInfo& s) {
  if (s.id.size() > 0xffff || s.name.size() > 0xffff)
    return fail(EINVAL, "snapshot ID or name longer than 65535 bytes");
  constexpr uint32_t kExtra = 24;
  const uint64_t len = kEntryFixed + kExtra + s.id.size() + s.name.size();
  std::vector<uint8_t> e((len + 7) & ~7ull, 0);
  uint8_t* p = e.data();
  put_be64(p, s.l1_table_offset);
  put_be32(p + 8, s.l1_size);
  put_be16(p + 12, static_cast<uint16_t>(s.id.size()));
  put_be16(p + 14, static_cast<uint16_t>(s.name.size()));
  put_be32(p + 16, s.date_sec);
  put_be32(p + 20, s.date_nsec);
  put_be64(p + 24, s.vm_clock_nsec);
  put_be32(p + 32, static_cast<uint32_t>(std::min<uint64_t>(s.vm_state_size, UINT32_MAX)));
  put_be32(p + 36, kExtra);
  put_be64(p + 40, s.vm_state_size);
  put_be64(p + 48, s.disk_size);
  put_be64(p + 56, s.icount == UINT64_MAX ? 0 : s.icount);  // qemu-img records 0 outside record/replay
  std::copy(s.id.begin(), s.id.end(), p + kEntryFixed + kExtra);
  std::copy(s.name.begin(), s.name.end(), p + kEntryFixed + kExtra + s.id.size());
  return e;
}

}  // namespace microvm::qcow2
