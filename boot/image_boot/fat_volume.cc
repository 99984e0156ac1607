#include "boot/image_boot/fat_volume.h"

#include <array>
#include <cstdio>

#include "base/large_buffer.h"
#include "boot/image_boot/byte_order.h"
#include "boot/image_boot/config_text.h"

namespace microvm::image_boot {
namespace {

constexpr size_t kDirEntryBytes = 32;
constexpr uint8_t kAttrDir = 0x10, kAttrVolume = 0x08, kAttrLongName = 0x0F;

struct Bpb {
  uint32_t bytes_per_sector, sectors_per_cluster, reserved, fats, root_entries, total_sectors, fat_sectors;
};

bool power_of_two(uint32_t v) { return v && !(v & (v - 1)); }

Bpb parse_bpb(std::span<const std::byte> s) {
  Bpb b{};
  b.bytes_per_sector = le16(s, 11);
  b.sectors_per_cluster = static_cast<uint8_t>(s[13]);
  b.reserved = le16(s, 14);
  b.fats = static_cast<uint8_t>(s[16]);
  b.root_entries = le16(s, 17);
  b.total_sectors = le16(s, 19) ? le16(s, 19) : le32(s, 32);
  b.fat_sectors = le16(s, 22) ? le16(s, 22) : le32(s, 36);
  return b;
}

bool plausible(const Bpb& b, std::span<const std::byte> s) {
  if (static_cast<uint8_t>(s[510]) != 0x55 || static_cast<uint8_t>(s[511]) != 0xAA) return false;
  if (b.bytes_per_sector < 512 || b.bytes_per_sector > 4096 || !power_of_two(b.bytes_per_sector)) return false;
  if (!power_of_two(b.sectors_per_cluster) || b.sectors_per_cluster > 128) return false;
  return b.reserved != 0 && b.fats != 0 && b.fats <= 4 && b.total_sectors != 0 && b.fat_sectors != 0;
}

// The 8.3 name as Windows NT and Linux show it: lower-case flags for the base and extension.
std::string short_name(std::span<const std::byte> e) {
  uint8_t flags = static_cast<uint8_t>(e[12]);
  auto part = [&](size_t from, size_t len, bool low) {
    std::string s;
    for (size_t i = from; i < from + len; ++i) {
      char c = static_cast<char>(e[i]);
      if (i == 0 && static_cast<uint8_t>(c) == 0x05) c = static_cast<char>(0xE5);  // escaped first byte
      s += low && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  };
  std::string base = part(0, 8, flags & 0x08), ext = part(8, 3, flags & 0x10);
  return ext.empty() ? base : base + "." + ext;
}

uint8_t short_checksum(std::span<const std::byte> e) {
  uint8_t sum = 0;
  for (size_t i = 0; i < 11; ++i)
    sum = static_cast<uint8_t>(((sum & 1) << 7) + (sum >> 1) + static_cast<uint8_t>(e[i]));
  return sum;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// UTF-16LE units up to the first NUL; unpaired surrogates become U+FFFD.
std::string utf16_to_utf8(const std::vector<uint16_t>& units) {
  std::string out;
  for (size_t i = 0; i < units.size(); ++i) {
    uint32_t u = units[i];
    if (u == 0) break;
    if (u >= 0xD800 && u < 0xDC00 && i + 1 < units.size() && units[i + 1] >= 0xDC00 && units[i + 1] < 0xE000) {
      u = 0x10000 + ((u - 0xD800) << 10) + (units[i + 1] - 0xDC00);
      ++i;
    } else if (u >= 0xD800 && u < 0xE000) {
      u = 0xFFFD;
    }
    append_utf8(out, u);
  }
  return out;
}

// The long name being assembled from LFN slots, which precede their 8.3 entry in reverse order.
struct LongName {
  std::vector<uint16_t> units;  // 13 per slot, slot 1 first
  int expect = 0;               // the next slot number we need (counting down to 1); 0: none pending
  uint8_t checksum = 0;

  void slot(std::span<const std::byte> e) {
    uint8_t ord = static_cast<uint8_t>(e[0]);
    int n = ord & 0x1F;
    if (ord & 0x40) {  // the last slot comes first
      if (n == 0) return reset();
      units.assign(size_t(n) * 13, 0xFFFF);
      expect = n;
      checksum = static_cast<uint8_t>(e[13]);
    } else if (expect == 0 || static_cast<uint8_t>(e[13]) != checksum) {
      return reset();
    }
    if (n != expect) return reset();
    static constexpr std::array<size_t, 13> kOffsets = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
    for (size_t i = 0; i < 13; ++i) units[size_t(n - 1) * 13 + i] = le16(e, kOffsets[i]);
    --expect;
    if (expect == 0) expect = -1;  // complete: waiting for the 8.3 entry
  }
  // The name for the 8.3 entry `e`, when the slots before it were complete and belong to it.
  std::string take(std::span<const std::byte> e) {
    std::string name;
    if (expect == -1 && short_checksum(e) == checksum) name = utf16_to_utf8(units);
    reset();
    return name;
  }
  void reset() {
    units.clear();
    expect = 0;
  }
};

}  // namespace

bool FatVolume::probe(ImageReader& part) {
  std::array<std::byte, 512> s{};
  if (part.size() < s.size() || !part.read_at(0, s)) return false;
  return plausible(parse_bpb(s), s);
}

Result<std::unique_ptr<FatVolume>> FatVolume::open(ImageReader& part) {
  std::array<std::byte, 512> s{};
  if (part.size() < s.size()) return fail(EINVAL, "too small for a FAT file system");
  TRY(part.read_at(0, s));
  std::unique_ptr<FatVolume> v(new FatVolume(part));
  TRY(v->load(s));
  return v;
}

Result<void> FatVolume::load(std::span<const std::byte> s) {
  Bpb b = parse_bpb(s);
  if (!plausible(b, s)) return fail(EINVAL, "not a FAT file system (boot sector)");
  uint64_t bps = b.bytes_per_sector;
  uint64_t root_sectors = (uint64_t(b.root_entries) * kDirEntryBytes + bps - 1) / bps;
  uint64_t meta_sectors = uint64_t(b.reserved) + uint64_t(b.fats) * b.fat_sectors + root_sectors;
  if (meta_sectors >= b.total_sectors) return fail(EINVAL, "FAT: the metadata is larger than the file system");
  // Only the metadata must fit: Linux mounts a file system a little larger than its partition
  // (a partition tool's rounding), and a cluster past the end fails when it is read.
  if (meta_sectors * bps > part_.size()) return fail(EINVAL, "FAT: the metadata is larger than its partition");
  uint64_t clusters = (b.total_sectors - meta_sectors) / b.sectors_per_cluster;
  // The FAT type follows from the cluster count alone (Microsoft's FAT specification).
  bits_ = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
  if (bits_ == 32 && (b.root_entries != 0 || le16(s, 22) != 0)) return fail(EINVAL, "FAT32: malformed BPB");
  if (bits_ != 32 && b.root_entries == 0) return fail(EINVAL, "FAT12/16: no root directory");
  clusters_ = static_cast<uint32_t>(std::min<uint64_t>(clusters, 0x0FFFFFF5));
  cluster_bytes_ = bps * b.sectors_per_cluster;
  uint64_t fat_offset = uint64_t(b.reserved) * bps;
  // Entries 0 and 1 are reserved, so the table covers clusters_+2 entries.
  uint64_t fat_needed = (uint64_t(clusters_) + 2) * bits_ / 8 + 1;
  uint64_t fat_bytes = uint64_t(b.fat_sectors) * bps;
  if (fat_bytes < fat_needed) return fail(EINVAL, "FAT: the allocation table is smaller than the cluster count needs");
  fat_needed = std::min(fat_bytes, fat_needed + 1);
  if (fat_needed > kMaxFatBytes) return fail(EFBIG, "FAT: allocation table larger than 16 MiB");
  fat_.resize(fat_needed);
  TRY(part_.read_at(fat_offset, fat_));
  root_offset_ = (uint64_t(b.reserved) + uint64_t(b.fats) * b.fat_sectors) * bps;
  root_bytes_ = uint64_t(b.root_entries) * kDirEntryBytes;
  data_offset_ = meta_sectors * bps;
  size_t serial_at = bits_ == 32 ? 67 : 39, label_at = bits_ == 32 ? 71 : 43;
  if (bits_ == 32) {
    root_cluster_ = le32(s, 44) & 0x0FFFFFFF;
    if (root_cluster_ < 2 || root_cluster_ > clusters_ + 1)
      return fail(EINVAL, "FAT32: root directory cluster out of range");
  }
  uint32_t serial = le32(s, serial_at);
  char uuid[16];
  std::snprintf(uuid, sizeof uuid, "%04X-%04X", serial >> 16, serial & 0xFFFF);  // as blkid prints it
  uuid_ = uuid;
  std::string bpb_label(reinterpret_cast<const char*>(s.data() + label_at), 11);
  while (!bpb_label.empty() && (bpb_label.back() == ' ' || bpb_label.back() == '\0')) bpb_label.pop_back();
  if (bpb_label != "NO NAME") label_ = bpb_label;
  // blkid prefers the root directory's volume-label entry, which mlabel and Windows update.
  std::vector<std::byte> raw(std::min<uint64_t>(bits_ == 32 ? cluster_bytes_ : root_bytes_, 64 * kDirEntryBytes));
  TRY(part_.read_at(bits_ == 32 ? data_offset_ + uint64_t(root_cluster_ - 2) * cluster_bytes_ : root_offset_, raw));
  for (size_t at = 0; at + kDirEntryBytes <= raw.size(); at += kDirEntryBytes) {
    auto e = std::span<const std::byte>(raw).subspan(at, kDirEntryBytes);
    uint8_t first = static_cast<uint8_t>(e[0]), attr = static_cast<uint8_t>(e[11]);
    if (first == 0) break;
    if (first == 0xE5 || (attr & 0x3F) == kAttrLongName || !(attr & kAttrVolume)) continue;
    std::string l(reinterpret_cast<const char*>(e.data()), 11);
    while (!l.empty() && l.back() == ' ') l.pop_back();
    label_ = l;
    break;
  }
  return {};
}

Result<uint32_t> FatVolume::next_cluster(uint32_t c) const {
  if (c < 2 || c > clusters_ + 1) return fail(EINVAL, "FAT: cluster number out of range");
  uint32_t v;
  if (bits_ == 12) {
    size_t at = size_t(c) + c / 2;
    if (at + 2 > fat_.size()) return fail(EINVAL, "FAT: entry past the table");
    uint16_t pair = le16(fat_, at);
    v = c & 1 ? pair >> 4 : pair & 0xFFF;
    if (v >= 0xFF8) return 0;
  } else if (bits_ == 16) {
    size_t at = size_t(c) * 2;
    if (at + 2 > fat_.size()) return fail(EINVAL, "FAT: entry past the table");
    v = le16(fat_, at);
    if (v >= 0xFFF8) return 0;
  } else {
    size_t at = size_t(c) * 4;
    if (at + 4 > fat_.size()) return fail(EINVAL, "FAT: entry past the table");
    v = le32(fat_, at) & 0x0FFFFFFF;
    if (v >= 0x0FFFFFF8) return 0;
  }
  if (v < 2 || v > clusters_ + 1) return fail(EIO, "FAT: broken cluster chain (free, reserved or bad cluster)");
  return v;
}

Result<std::vector<uint32_t>> FatVolume::chain(uint32_t first, uint64_t max) const {
  std::vector<uint32_t> out;
  uint32_t c = first;
  while (c != 0 && out.size() < max) {
    if (c < 2 || c > clusters_ + 1) return fail(EIO, "FAT: cluster chain points out of the file system");
    // A chain longer than the cluster count must revisit a cluster.
    if (out.size() >= clusters_) return fail(ELOOP, "FAT: cluster chain loops");
    out.push_back(c);
    if (out.size() == max) break;
    c = TRY(next_cluster(c));
  }
  return out;
}

Result<std::vector<std::byte>> FatVolume::read_chain(uint32_t first, uint64_t bytes, bool exact) {
  uint64_t want_clusters = (bytes + cluster_bytes_ - 1) / cluster_bytes_;
  auto clusters = TRY(chain(first, want_clusters));
  if (exact && clusters.size() < want_clusters) return fail(EIO, "FAT: file is shorter than its directory entry says");
  uint64_t have = std::min<uint64_t>(bytes, clusters.size() * cluster_bytes_);
  auto out = make_large_buffer(have);
  // Contiguous clusters (the usual case) are read in one go.
  uint64_t done = 0;
  for (size_t i = 0; i < clusters.size() && done < have;) {
    size_t j = i + 1;
    while (j < clusters.size() && clusters[j] == clusters[j - 1] + 1) ++j;
    uint64_t len = std::min<uint64_t>((j - i) * cluster_bytes_, have - done);
    TRY(part_.read_at(data_offset_ + uint64_t(clusters[i] - 2) * cluster_bytes_, std::span(out).subspan(done, len)));
    done += len;
    i = j;
  }
  return out;
}

Node FatVolume::root() { return Node{Node::Kind::kDir, bits_ == 32 ? root_cluster_ : 0, 0}; }

Result<std::vector<FatVolume::Entry>> FatVolume::entries(const Node& dir) {
  if (dir.kind != Node::Kind::kDir) return fail(ENOTDIR, "FAT: not a directory");
  std::vector<std::byte> raw;
  uint64_t limit = uint64_t(kMaxDirEntries) * kDirEntryBytes;
  if (dir.id == 0 && bits_ != 32) {
    raw.resize(root_bytes_);
    TRY(part_.read_at(root_offset_, raw));
  } else {
    // A directory's size is its chain's; cluster 0 (a ".." entry) is the root.
    uint32_t first = dir.id == 0 ? root_cluster_ : static_cast<uint32_t>(dir.id);
    raw = TRY(read_chain(first, limit, false));
  }
  std::vector<Entry> out;
  LongName lfn;
  for (size_t at = 0; at + kDirEntryBytes <= raw.size(); at += kDirEntryBytes) {
    auto e = std::span<const std::byte>(raw).subspan(at, kDirEntryBytes);
    uint8_t first = static_cast<uint8_t>(e[0]), attr = static_cast<uint8_t>(e[11]);
    if (first == 0) break;  // no entries after this one
    if (first == 0xE5) {
      lfn.reset();
      continue;
    }
    if ((attr & 0x3F) == kAttrLongName) {
      lfn.slot(e);
      continue;
    }
    std::string long_name = lfn.take(e);
    if (attr & kAttrVolume) continue;
    Entry en;
    en.name = long_name.empty() ? short_name(e) : long_name;
    if (en.name.empty() || en.name.find('/') != std::string::npos || en.name.find('\0') != std::string::npos) continue;
    uint32_t cluster = le16(e, 26);
    if (bits_ == 32) cluster |= uint32_t(le16(e, 20)) << 16;
    cluster &= 0x0FFFFFFF;
    bool is_dir = attr & kAttrDir;
    en.node = Node{is_dir ? Node::Kind::kDir : Node::Kind::kFile, cluster, is_dir ? 0 : le32(e, 28)};
    out.push_back(std::move(en));
  }
  return out;
}

Result<std::optional<Node>> FatVolume::lookup(const Node& dir, std::string_view name) {
  auto all = TRY(entries(dir));
  std::string want = lower(name);
  for (const auto& e : all)
    if (lower(e.name) == want) return std::optional<Node>(e.node);
  return std::optional<Node>{};
}

Result<std::string> FatVolume::read_link(const Node&) { return fail(EINVAL, "FAT has no symbolic links"); }

Result<std::vector<std::byte>> FatVolume::read(const Node& file) {
  if (file.kind != Node::Kind::kFile) return fail(EISDIR, "FAT: not a regular file");
  if (file.size == 0) return std::vector<std::byte>{};
  if (file.size > uint64_t(clusters_) * cluster_bytes_) return fail(EIO, "FAT: file larger than the file system");
  return read_chain(static_cast<uint32_t>(file.id), file.size, true);
}

Result<std::vector<std::string>> FatVolume::list(const Node& dir) {
  auto all = TRY(entries(dir));
  std::vector<std::string> names;
  for (auto& e : all) names.push_back(std::move(e.name));
  return names;
}

}  // namespace microvm::image_boot
