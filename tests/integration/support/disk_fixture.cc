#include "tests/integration/support/disk_fixture.h"

#include <cstdlib>
#include <fstream>

namespace microvm::testing {

// Builds `name` (raw) from ext4 file systems made with mkfs.ext4 -d, in a GPT (sgdisk) or MBR
// (sfdisk) table, or alone on the whole disk ("none").
std::string make_disk(const TempDir& dir, const std::string& name, const std::string& table,
                      const std::vector<Part>& parts) {
  const std::string d = dir.path();
  uint64_t offset_sectors = 2048, total = 2048;
  for (const auto& p : parts) total += uint64_t(p.size_mib) << 11;
  total += 2048;
  std::string img = d + "/" + name;
  std::string cmd =
      "truncate -s " + std::to_string(table == "none" ? (uint64_t(parts[0].size_mib) << 20) : total * 512) + " " + img;
  if (system(cmd.c_str()) != 0) return "";
  std::string sfdisk = "label: dos\nlabel-id: 0x0badcafe\n";
  std::string sgdisk = "sgdisk";
  int n = 0;
  for (const auto& p : parts) {
    ++n;
    uint64_t sectors = uint64_t(p.size_mib) << 11;
    sgdisk += " -n" + std::to_string(n) + ":" + std::to_string(offset_sectors) + ":+" + std::to_string(sectors) +
              " -t" + std::to_string(n) +
              (p.uuid.empty()   ? ":ef02"
               : p.fs == "vfat" ? ":ef00"
                                : ":8300");
    sfdisk += std::to_string(offset_sectors) + "," + std::to_string(sectors) + ",83\n";
    if (!p.uuid.empty()) {
      std::string root = d + "/" + name + "-root" + std::to_string(n);
      if (system(("rm -rf " + root + " && mkdir -p " + root).c_str()) != 0) return "";
      for (const auto& [path, text] : p.files) {
        std::string full = root + path;
        if (system(("mkdir -p $(dirname " + full + ")").c_str()) != 0) return "";
        std::ofstream(full, std::ios::binary) << text;
      }
      for (const auto& [path, target] : p.symlinks) {
        std::string full = root + path;
        if (system(("mkdir -p $(dirname " + full + ") && ln -s '" + target + "' " + full).c_str()) != 0) return "";
      }
      std::string fs = root + "." + p.fs;
      std::string mkfs =
          p.fs == "vfat"
              ? "mkfs.vfat -C -i " + p.uuid + " " + fs + " " + std::to_string(p.size_mib << 10) +
                    " >/dev/null && MTOOLS_SKIP_CHECK=1 mcopy -s -i " + fs + " " + root + "/* ::"
              : "mkfs.ext4 -q -F -U " + p.uuid + " -d " + root + " " + fs + " " + std::to_string(p.size_mib) + "M";
      if (system(mkfs.c_str()) != 0) return "";
      uint64_t seek = table == "none" ? 0 : offset_sectors;
      if (system(("dd if=" + fs + " of=" + img + " bs=512 seek=" + std::to_string(seek) + " conv=notrunc status=none")
                     .c_str()) != 0)
        return "";
    }
    offset_sectors += sectors;
  }
  if (table == "gpt" && system((sgdisk + " " + img + " >/dev/null").c_str()) != 0) return "";
  if (table == "mbr" && system(("printf '" + sfdisk + "' | sfdisk -q " + img).c_str()) != 0) return "";
  return img;
}

std::string new_uuid() { return shell_line("cat /proc/sys/kernel/random/uuid"); }

}  // namespace microvm::testing
