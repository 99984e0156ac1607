#pragma once
// A read-only file system as image_boot sees it: nodes, directory lookups, symlink targets and
// file contents. ExtVolume implements it with libext2fs; tests use an in-memory tree.
// resolve_path() walks untrusted paths over it: symlinks are followed a bounded number of times,
// absolute targets restart at this file system's root, and ".." never climbs above it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace microvm::image_boot {

struct Node {
  enum class Kind { kFile, kDir, kSymlink, kOther } kind = Kind::kOther;
  uint64_t id = 0;    // inode number
  uint64_t size = 0;  // bytes
};

constexpr int kMaxSymlinks = 40;  // per resolution, as Linux (ELOOP)
constexpr uint64_t kMaxSymlinkBytes = 4096;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxDirEntries = 65536;

// A run of a file's bytes in the reader its file system was opened on.
struct FileRun {
  uint64_t file_offset = 0;
  uint64_t image_offset = 0;
  uint64_t length = 0;
};

class FileTree {
 public:
  virtual ~FileTree() = default;
  virtual std::string fs_type() const = 0;  // "ext4", ...
  virtual std::string fs_uuid() const = 0;  // as blkid prints it; what root=UUID= names
  virtual std::string label() const = 0;
  virtual Node root() = 0;
  // nullopt: no such entry.
  [[nodiscard]] virtual Result<std::optional<Node>> lookup(const Node& dir, std::string_view name) = 0;
  [[nodiscard]] virtual Result<std::string> read_link(const Node& link) = 0;         // at most kMaxSymlinkBytes
  [[nodiscard]] virtual Result<std::vector<std::byte>> read(const Node& file) = 0;   // node.size bytes
  [[nodiscard]] virtual Result<std::vector<std::string>> list(const Node& dir) = 0;  // at most kMaxDirEntries
  // Where a regular file's node.size bytes lie: runs in ascending file order, each inside the
  // file and inside the reader; bytes no run covers read as zeros (holes). nullopt when this
  // file system cannot say for this file: read() it instead.
  [[nodiscard]] virtual Result<std::optional<std::vector<FileRun>>> map(const Node&) {
    return std::optional<std::vector<FileRun>>{};
  }
};

// Resolves `path` (absolute or relative to the root). With follow_final, a symlink at the end is
// followed too. ENOENT when a component does not exist (the message names the path).
[[nodiscard]] Result<Node> resolve_path(FileTree& fs, std::string_view path, bool follow_final = true);

// A regular file's contents, refused when it is larger than `limit` bytes.
[[nodiscard]] Result<std::vector<std::byte>> read_file(FileTree& fs, std::string_view path, uint64_t limit);
[[nodiscard]] Result<std::string> read_text(FileTree& fs, std::string_view path, uint64_t limit);
// Whether `path` names a regular file (after symlinks). Errors other than "not there" propagate.
[[nodiscard]] Result<bool> is_file(FileTree& fs, std::string_view path);
// Names in a directory, without "." and "..", sorted.
[[nodiscard]] Result<std::vector<std::string>> list_dir(FileTree& fs, std::string_view path);

}  // namespace microvm::image_boot
