#include "cli/img/img_chain.h"

#include <sys/stat.h>

#include <set>
#include <utility>

#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_chain.h"

namespace microvm::img {

std::string backing_path(const std::string& overlay, const std::string& name) {
  if (name.empty() || name[0] == '/') return name;
  auto slash = overlay.rfind('/');
  if (slash == std::string::npos) return name;
  return overlay.substr(0, slash + 1) + name;
}

Result<std::vector<ChainLevel>> open_chain_levels(const std::string& path, std::optional<DiskFormat> fmt, bool lock) {
  std::vector<ChainLevel> chain;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::string cur = path;
  while (true) {
    if (chain.size() > static_cast<size_t>(qcow2::kMaxChainDepth))
      return fail(ELOOP, "backing chain deeper than " + std::to_string(qcow2::kMaxChainDepth) + " images at " + cur);
    // A backing file whose format is not recorded is probed: this is read-only inspection.
    DiskFormat f = fmt ? *fmt : TRY(probe_format(cur));
    auto file = open_image_file(cur, true, CacheMode::kWriteback, lock, nullptr);
    if (!file) return std::unexpected(file.error());
    struct stat st {};
    if (::fstat(file->fd.get(), &st) != 0) return fail_errno("stat " + cur);
    if (!seen.insert({st.st_dev, st.st_ino}).second)
      return fail(ELOOP, "backing chain loop: " + cur + " appears twice");
    ChainLevel level;
    level.path = cur;
    level.format = f;
    std::string next;
    std::optional<DiskFormat> next_fmt;
    if (f == DiskFormat::kRaw) {
      level.raw = std::move(file->fd);
      level.size = file->size;
    } else {
      qcow2::Image::Options o;
      o.read_only = true;
      auto img = qcow2::Image::open(std::move(file->fd), o);
      if (!img) return std::unexpected(img.error().context(cur));
      const qcow2::Header& h = (*img)->header();
      level.size = h.size;
      if (!h.backing_file.empty()) {
        next = backing_path(cur, h.backing_file);
        if (!h.backing_format.empty()) {
          auto bf = parse_disk_format(h.backing_format);
          if (!bf) return fail(EINVAL, cur + ": backing format '" + h.backing_format + "' is not supported");
          next_fmt = *bf;
        }
      }
      level.qcow2 = std::move(*img);
    }
    chain.push_back(std::move(level));
    if (next.empty()) return chain;
    cur = next;
    fmt = next_fmt;
  }
}

std::vector<ChainLevel> single_qcow2_level(const std::string& path, std::unique_ptr<qcow2::Image> image) {
  std::vector<ChainLevel> levels(1);
  levels[0].path = path;
  levels[0].format = DiskFormat::kQcow2;
  levels[0].size = image->size();
  levels[0].qcow2 = std::move(image);
  return levels;
}

}  // namespace microvm::img
