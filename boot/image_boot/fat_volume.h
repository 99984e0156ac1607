#pragma once
// A FAT12/16/32 file system (the EFI system partition), read-only, from untrusted image bytes.
// Debian packages no FAT reading library (mtools, dosfstools and fatcat are programs only), so
// this is a small reader of our own: BPB, the file allocation table, directories with VFAT long
// names, and cluster-chain file reads. Every count and offset is checked against the volume,
// cluster chains are bounded by the cluster count (a looping chain is an error), and names are
// matched case-insensitively, as the firmware and Linux's vfat do.
#include <memory>

#include "boot/image_boot/file_tree.h"
#include "boot/image_boot/image_reader.h"

namespace microvm::image_boot {

// The FAT is read whole when the volume is opened; larger ones are refused (an ESP's is < 1 MiB).
constexpr uint64_t kMaxFatBytes = 16ull << 20;

class FatVolume final : public FileTree {
 public:
  // Cheap check of the boot sector (signature and a plausible BPB), no allocation.
  static bool probe(ImageReader& part);
  // `part` must outlive the volume.
  [[nodiscard]] static Result<std::unique_ptr<FatVolume>> open(ImageReader& part);

  std::string fs_type() const override { return "vfat"; }
  std::string fs_uuid() const override { return uuid_; }
  std::string label() const override { return label_; }
  unsigned fat_bits() const { return bits_; }
  Node root() override;
  Result<std::optional<Node>> lookup(const Node& dir, std::string_view name) override;
  Result<std::string> read_link(const Node& link) override;
  Result<std::vector<std::byte>> read(const Node& file) override;
  Result<std::vector<std::string>> list(const Node& dir) override;

 private:
  struct Entry {
    std::string name;  // the long name when there is one, else the 8.3 name
    Node node;
  };
  explicit FatVolume(ImageReader& part) : part_(part) {}
  Result<void> load(std::span<const std::byte> boot_sector);
  Result<uint32_t> next_cluster(uint32_t cluster) const;
  // The clusters of a chain, at most `max` of them (fewer when the chain ends first).
  Result<std::vector<uint32_t>> chain(uint32_t first, uint64_t max) const;
  Result<std::vector<std::byte>> read_chain(uint32_t first, uint64_t bytes, bool exact);
  Result<std::vector<Entry>> entries(const Node& dir);

  ImageReader& part_;
  unsigned bits_ = 0;  // 12, 16 or 32
  uint64_t cluster_bytes_ = 0;
  uint64_t data_offset_ = 0;  // byte offset of cluster 2
  uint32_t clusters_ = 0;     // data clusters: valid numbers are 2 .. clusters_+1
  uint64_t root_offset_ = 0;  // FAT12/16: the fixed root directory region
  uint64_t root_bytes_ = 0;
  uint32_t root_cluster_ = 0;  // FAT32
  std::vector<std::byte> fat_;
  std::string uuid_, label_;
};

}  // namespace microvm::image_boot
