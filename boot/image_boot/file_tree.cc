#include "boot/image_boot/file_tree.h"

#include <algorithm>

namespace microvm::image_boot {
namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

struct Walk {
  FileTree& fs;
  std::string_view original;
  int links = 0;
  std::vector<Node> stack;  // root .. current directory

  Result<void> walk(std::string_view path, bool follow_final) {
    if (path.size() > kMaxPathBytes) return fail(ENAMETOOLONG, "path longer than 4096 bytes");
    if (!path.empty() && path.front() == '/') stack.resize(1);
    auto parts = split(path);
    for (size_t i = 0; i < parts.size(); ++i) {
      std::string_view name = parts[i];
      bool last = i + 1 == parts.size();
      if (name == ".") continue;
      if (name == "..") {
        if (stack.size() == 1) return fail(EXDEV, "'" + std::string(original) + "' escapes the file system's root");
        stack.pop_back();
        continue;
      }
      if (stack.back().kind != Node::Kind::kDir)
        return fail(ENOTDIR, "'" + std::string(original) + "': a component is not a directory");
      auto found = TRY(fs.lookup(stack.back(), name));
      if (!found) return fail(ENOENT, "'" + std::string(original) + "' not found");
      if (found->kind == Node::Kind::kSymlink && (!last || follow_final)) {
        if (++links > kMaxSymlinks)
          return fail(ELOOP, "'" + std::string(original) + "': more than " + std::to_string(kMaxSymlinks) +
                                 " symbolic links (a loop?)");
        std::string target = TRY(fs.read_link(*found));
        if (target.empty()) return fail(ENOENT, "'" + std::string(original) + "': empty symbolic link");
        TRY(walk(target, true));  // relative targets continue from the link's directory
        continue;
      }
      stack.push_back(*found);
    }
    return {};
  }
};

}  // namespace

Result<Node> resolve_path(FileTree& fs, std::string_view path, bool follow_final) {
  Walk w{fs, path};
  w.stack.push_back(fs.root());
  TRY(w.walk(path, follow_final));
  return w.stack.back();
}

Result<std::vector<std::byte>> read_file(FileTree& fs, std::string_view path, uint64_t limit) {
  Node n = TRY(resolve_path(fs, path));
  if (n.kind != Node::Kind::kFile) return fail(EISDIR, "'" + std::string(path) + "' is not a regular file");
  if (n.size > limit)
    return fail(EFBIG, "'" + std::string(path) + "' is " + std::to_string(n.size) + " bytes, more than the limit of " +
                           std::to_string(limit));
  auto bytes = TRY(fs.read(n));
  if (bytes.size() != n.size) return fail(EIO, "'" + std::string(path) + "': short read");
  return bytes;
}

Result<std::string> read_text(FileTree& fs, std::string_view path, uint64_t limit) {
  auto bytes = TRY(read_file(fs, path, limit));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<bool> is_file(FileTree& fs, std::string_view path) {
  auto n = resolve_path(fs, path);
  if (!n) {
    if (n.error().code == ENOENT || n.error().code == ENOTDIR) return false;
    return std::unexpected(n.error());
  }
  return n->kind == Node::Kind::kFile;
}

Result<std::vector<std::string>> list_dir(FileTree& fs, std::string_view path) {
  Node n = TRY(resolve_path(fs, path));
  if (n.kind != Node::Kind::kDir) return fail(ENOTDIR, "'" + std::string(path) + "' is not a directory");
  auto names = TRY(fs.list(n));
  std::erase_if(names, [](const std::string& s) { return s == "." || s == ".."; });
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace microvm::image_boot
