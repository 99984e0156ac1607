#pragma once
// A small FAT12 image of a few files in its root directory, built in memory: the NoCloud seed
// for --cloud-init. Names longer than 8.3 get VFAT long-name entries (cloud-init reads
// "user-data", "meta-data", "network-config"); the volume label is written both in the boot
// sector and as the root directory's label entry, where blkid looks first. Linux's vfat,
// dosfstools' fsck.fat and mtools read it (tests/unit/cli/fat_image_test.cc).
#include <cstddef>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm {

struct FatFile {
  std::string name;  // 1..64 characters of [A-Za-z0-9._-], unique without regard to case
  std::string data;
};

constexpr size_t kMaxFatImageFiles = 8;
constexpr size_t kMaxFatImageBytes = 64ull << 20;  // all files together

// `label`: up to 11 characters of [A-Za-z0-9_-]; `serial`: the volume id (blkid: XXXX-XXXX).
[[nodiscard]] Result<std::vector<std::byte>> build_fat_image(const std::vector<FatFile>& files,
                                                             const std::string& label, uint32_t serial);

}  // namespace microvm
