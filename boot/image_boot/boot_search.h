#pragma once
// Finds what to boot inside a disk image, as a boot loader would: the partition table, then on
// each ext2/3/4 and FAT file system, in this order of rules: Boot Loader Specification Type 1
// entries (/loader/entries on an ESP or /boot partition, /boot/loader/entries on a root), Type 2
// unified kernel images (/EFI/Linux/*.efi), GRUB's grub.cfg (the usual places on every file
// system, then /EFI/*/grub.cfg on a FAT one), extlinux.conf, and Debian's /vmlinuz +
// /initrd.img symlinks. The first rule whose configuration exists decides; its errors are
// reported, not skipped over.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "boot/image_boot/boot_entry.h"
#include "boot/image_boot/file_tree.h"
#include "boot/image_boot/image_reader.h"
#include "boot/image_boot/partition_table.h"

namespace microvm::image_boot {

struct FoundFile {
  unsigned partition = 0;  // 0: the whole disk is one file system
  std::string fs_type, fs_uuid;
  std::string path;  // inside that file system, as resolved from the configuration
  uint64_t size = 0;
  std::string section;  // a unified kernel image's PE section (".linux", ".initrd"), else ""
};

// Where a loaded file's bytes lie in the disk image: runs in content order with offsets into the
// whole image (partition offsets added); bytes no run covers read as zeros.
struct DiskMap {
  uint64_t size = 0;
  std::vector<FileRun> runs;
};

struct BootPlan {
  TableKind table = TableKind::kNone;
  std::string rule;  // "bls", "uki", "grub", "extlinux" or "debian-symlinks"
  FoundFile config;  // the configuration file (for debian-symlinks: the /vmlinuz link)
  std::string title;
  FoundFile kernel;
  std::vector<FoundFile> initrds;
  std::string options;  // the entry's kernel command line (root= possibly rewritten, see notes)
  std::vector<std::string> notes;
  // Filled when FindOptions::load: the kernel, and the initrds concatenated (as GRUB does).
  std::vector<std::byte> kernel_bytes;
  std::vector<std::byte> initrd_bytes;
  // Filled instead of kernel_bytes / initrd_bytes when FindOptions::map and the file system can
  // say where the files lie (ext4 extents); the bytes are then read later, straight to their
  // destination (DiskMapSource).
  std::optional<DiskMap> kernel_map;
  std::optional<DiskMap> initrd_map;
};

struct FindOptions {
  bool load = false;
  bool map = false;  // with load: map the files where possible rather than read them (see BootPlan)
  uint64_t max_kernel_bytes = 256ull << 20;
  uint64_t max_initrd_bytes = 1ull << 30;  // all initrds together
};

[[nodiscard]] Result<BootPlan> find_boot(ImageReader& disk, const FindOptions& options);

// The kernel command line: `replace` (when non-empty) or the entry's options plus
// "console=ttyS0" when they name no console; then `append`.
std::string compose_cmdline(const std::string& entry_options, const std::string& replace, const std::string& append);

// One paragraph for `microvm run --print-boot`.
std::string describe_plan(const BootPlan& plan, const std::string& cmdline);

}  // namespace microvm::image_boot
