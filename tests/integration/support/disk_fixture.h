#pragma once
// Disk images for the disk-boot tests: ext4 file systems made with mkfs.ext4 -d (or FAT ones
// made with mkfs.vfat and filled with mtools), placed in a GPT (sgdisk) or MBR (sfdisk)
// partition table, or alone on the whole disk.
#include <map>
#include <string>
#include <vector>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {

struct Part {
  std::map<std::string, std::string> files;     // path -> contents
  std::map<std::string, std::string> symlinks;  // path -> target
  std::string uuid;                             // empty: no file system (a BIOS boot partition)
  unsigned size_mib = 16;
  std::string fs = "ext4";  // or "vfat": an EFI system partition; uuid is its
                            // volume id, 8 hex digits (blkid: XXXX-XXXX)
};

// Builds dir/name (raw); table is "gpt", "mbr" or "none". Partitions start at 1 MiB, in order.
// Returns the path, or "" when a tool failed. The file systems stay as dir/name-rootN.ext4.
std::string make_disk(const TempDir& dir, const std::string& name, const std::string& table,
                      const std::vector<Part>& parts);

// A fresh random UUID.
std::string new_uuid();

}  // namespace microvm::testing
