#pragma once
// An ext2/3/4 file system inside a disk image, read through libext2fs (e2fsprogs: the library
// e2fsck and debugfs are built on, fuzzed upstream, and the reference for the on-disk format).
// Its I/O goes through an io_manager of ours that reads from an ImageReader, so a file system in
// a qcow2 image (backing chain included) is read without a loop device or a temporary copy.
#include <memory>

#include "boot/image_boot/file_tree.h"
#include "boot/image_boot/image_reader.h"

namespace microvm::image_boot {

class ExtVolume final : public FileTree {
 public:
  // Cheap check of the superblock magic (no libext2fs call).
  static bool probe(ImageReader& part);
  // `part` must outlive the volume.
  [[nodiscard]] static Result<std::unique_ptr<ExtVolume>> open(ImageReader& part);
  ~ExtVolume() override;

  std::string fs_type() const override { return type_; }
  std::string fs_uuid() const override { return uuid_; }
  std::string label() const override { return label_; }
  Node root() override;
  Result<std::optional<Node>> lookup(const Node& dir, std::string_view name) override;
  Result<std::string> read_link(const Node& link) override;
  Result<std::vector<std::byte>> read(const Node& file) override;
  Result<std::vector<std::string>> list(const Node& dir) override;
  // Extent-mapped files (every ext4 file); nullopt for block-mapped and inline-data ones.
  Result<std::optional<std::vector<FileRun>>> map(const Node& file) override;

 private:
  struct Impl;
  explicit ExtVolume(std::unique_ptr<Impl> impl);
  Result<Node> node(uint64_t ino);
  Result<std::vector<FileRun>> map_extents(const Node& file, void* inode);  // struct ext2_inode*
  Result<std::vector<std::byte>> read_blocks(const Node& file);
  std::unique_ptr<Impl> impl_;
  std::string type_, uuid_, label_;
};

}  // namespace microvm::image_boot
