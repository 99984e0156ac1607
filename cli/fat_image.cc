#include "cli/fat_image.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

namespace microvm {
namespace {

constexpr uint32_t kSector = 512;
constexpr uint32_t kRootEntries = 64;         // 4 sectors: a label and up to 8 files with long names
constexpr uint32_t kMaxFat12Clusters = 4084;  // more would make it FAT16 (Microsoft's rule, and Linux's)

void put16(std::vector<std::byte>& b, size_t at, uint16_t v) {
  b[at] = std::byte(v & 0xFF);
  b[at + 1] = std::byte(v >> 8);
}
void put32(std::vector<std::byte>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = std::byte((v >> (8 * i)) & 0xFF);
}
void put_text(std::vector<std::byte>& b, size_t at, const std::string& s, size_t width) {
  for (size_t i = 0; i < width; ++i) b[at + i] = std::byte(i < s.size() ? s[i] : ' ');
}

void set_fat12(std::vector<std::byte>& fat, uint32_t cluster, uint16_t value) {
  size_t at = cluster + cluster / 2;
  uint16_t pair = static_cast<uint16_t>(fat[at]) | static_cast<uint16_t>(fat[at + 1]) << 8;
  pair = cluster & 1 ? static_cast<uint16_t>((pair & 0x000F) | (value << 4))
                     : static_cast<uint16_t>((pair & 0xF000) | value);
  fat[at] = std::byte(pair & 0xFF);
  fat[at + 1] = std::byte(pair >> 8);
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; }

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The 8.3 entry name: the name itself when it fits (upper case), else a "BASE~N" alias.
std::array<char, 11> short_name(const std::string& name, int index, bool& needs_long) {
  std::array<char, 11> out;
  out.fill(' ');
  auto dot = name.rfind('.');
  std::string base = dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
  std::string ext = dot == std::string::npos || dot == 0 ? "" : name.substr(dot + 1);
  bool fits = base.size() <= 8 && ext.size() <= 3 && base.find('.') == std::string::npos && upper(name) == name;
  needs_long = !fits;
  if (fits) {
    std::copy(base.begin(), base.end(), out.begin());
    std::copy(ext.begin(), ext.end(), out.begin() + 8);
    return out;
  }
  std::string b;
  for (char c : upper(base))
    if (c != '.') b += c;
  std::string tail = "~" + std::to_string(index + 1);
  b = b.substr(0, 8 - tail.size()) + tail;
  std::string e = upper(ext).substr(0, 3);
  std::copy(b.begin(), b.end(), out.begin());
  std::copy(e.begin(), e.end(), out.begin() + 8);
  return out;
}

uint8_t checksum(const std::array<char, 11>& n) {
  uint8_t sum = 0;
  for (char c : n) sum = static_cast<uint8_t>(((sum & 1) << 7) + (sum >> 1) + static_cast<uint8_t>(c));
  return sum;
}

}  // namespace

Result<std::vector<std::byte>> build_fat_image(const std::vector<FatFile>& files, const std::string& label,
                                               uint32_t serial) {
  if (files.size() > kMaxFatImageFiles) return fail(EINVAL, "FAT image: more than 8 files");
  if (label.empty() || label.size() > 11 ||
      !std::all_of(label.begin(), label.end(), [](char c) { return name_char(c) && c != '.'; }))
    return fail(EINVAL, "FAT image: label must be 1..11 characters of A-Z a-z 0-9 _ -");
  uint64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    if (f.name.empty() || f.name.size() > 64 || !std::all_of(f.name.begin(), f.name.end(), name_char) ||
        f.name == "." || f.name == "..")
      return fail(EINVAL, "FAT image: bad file name '" + f.name + "'");
    for (size_t j = 0; j < i; ++j)
      if (upper(files[j].name) == upper(f.name)) return fail(EINVAL, "FAT image: file name '" + f.name + "' twice");
    total += f.data.size();
  }
  if (total > kMaxFatImageBytes) return fail(EFBIG, "FAT image: files larger than 64 MiB together");

  // The smallest cluster that keeps the data within FAT12's cluster count (one spare each).
  uint32_t spc = 1;
  auto clusters_for = [&](uint32_t s) {
    uint64_t c = 0;
    for (const auto& f : files) c += (f.data.size() + s * kSector - 1) / (s * kSector);
    return c;
  };
  while (clusters_for(spc) + 16 > kMaxFat12Clusters) spc *= 2;
  if (spc > 128) return fail(EFBIG, "FAT image: files too large for FAT12");
  uint32_t clusters = static_cast<uint32_t>(clusters_for(spc)) + 16;
  uint32_t fat_sectors = ((clusters + 2) * 3 / 2 + kSector) / kSector;
  uint32_t root_sectors = kRootEntries * 32 / kSector;
  uint32_t reserved = 1, fats = 2;
  uint32_t data_start = reserved + fats * fat_sectors + root_sectors;
  uint32_t total_sectors = data_start + clusters * spc;
  std::vector<std::byte> img(uint64_t(total_sectors) * kSector);

  // Boot sector (BPB as mkfs.fat writes it for a small disk; no boot code).
  img[0] = std::byte{0xEB}, img[1] = std::byte{0x3C}, img[2] = std::byte{0x90};
  put_text(img, 3, "MICROVM", 8);
  put16(img, 11, kSector);
  img[13] = std::byte(spc);
  put16(img, 14, static_cast<uint16_t>(reserved));
  img[16] = std::byte(fats);
  put16(img, 17, kRootEntries);
  if (total_sectors < 65536)
    put16(img, 19, static_cast<uint16_t>(total_sectors));
  else
    put32(img, 32, total_sectors);
  img[21] = std::byte{0xF8};  // media: fixed disk
  put16(img, 22, static_cast<uint16_t>(fat_sectors));
  put16(img, 24, 32);  // sectors per track and heads: unused, but fsck.fat wants them set
  put16(img, 26, 64);
  img[36] = std::byte{0x80};
  img[38] = std::byte{0x29};  // extended boot signature: serial, label and type follow
  put32(img, 39, serial);
  put_text(img, 43, label, 11);
  put_text(img, 54, "FAT12", 8);
  img[510] = std::byte{0x55}, img[511] = std::byte{0xAA};

  std::vector<std::byte> fat(uint64_t(fat_sectors) * kSector);
  set_fat12(fat, 0, 0xFF8);
  set_fat12(fat, 1, 0xFFF);

  std::vector<std::byte> root(uint64_t(root_sectors) * kSector);
  size_t slot = 0;
  auto entry = [&]() { return slot++ * 32; };
  size_t at = entry();
  put_text(root, at, label, 11);
  root[at + 11] = std::byte{0x08};

  uint32_t next_cluster = 2;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    bool needs_long = false;
    auto sn = short_name(f.name, static_cast<int>(i), needs_long);
    if (needs_long) {
      // UTF-16 units of the name, NUL-terminated and 0xFFFF-padded to whole slots of 13.
      size_t slots = (f.name.size() + 1 + 12) / 13;
      if (slot + slots + 1 > kRootEntries) return fail(EINVAL, "FAT image: root directory full");
      uint8_t sum = checksum(sn);
      for (size_t s = slots; s >= 1; --s) {
        size_t e = entry();
        root[e] = std::byte(static_cast<uint8_t>(s | (s == slots ? 0x40 : 0)));
        root[e + 11] = std::byte{0x0F};
        root[e + 13] = std::byte(sum);
        static constexpr std::array<size_t, 13> kOffsets = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
        for (size_t k = 0; k < 13; ++k) {
          size_t ci = (s - 1) * 13 + k;
          uint16_t unit = ci < f.name.size() ? static_cast<uint8_t>(f.name[ci]) : ci == f.name.size() ? 0 : 0xFFFF;
          put16(root, e + kOffsets[k], unit);
        }
      }
    }
    if (slot + 1 > kRootEntries) return fail(EINVAL, "FAT image: root directory full");
    size_t e = entry();
    std::memcpy(&root[e], sn.data(), 11);
    root[e + 11] = std::byte{0x01};                 // read-only
    put16(root, e + 24, (20 << 9) | (1 << 5) | 1);  // 2000-01-01: a fixed date keeps the image reproducible
    put16(root, e + 18, (20 << 9) | (1 << 5) | 1);
    put32(root, e + 28, static_cast<uint32_t>(f.data.size()));
    if (f.data.empty()) continue;
    uint32_t n = static_cast<uint32_t>((f.data.size() + spc * kSector - 1) / (spc * kSector));
    put16(root, e + 26, static_cast<uint16_t>(next_cluster));
    for (uint32_t c = 0; c < n; ++c)
      set_fat12(fat, next_cluster + c, c + 1 == n ? 0xFFF : static_cast<uint16_t>(next_cluster + c + 1));
    std::memcpy(&img[(uint64_t(data_start) + uint64_t(next_cluster - 2) * spc) * kSector], f.data.data(),
                f.data.size());
    next_cluster += n;
  }
  for (uint32_t k = 0; k < fats; ++k)
    std::copy(fat.begin(), fat.end(), img.begin() + (reserved + k * fat_sectors) * kSector);
  std::copy(root.begin(), root.end(), img.begin() + (reserved + fats * fat_sectors) * kSector);
  return img;
}

}  // namespace microvm
