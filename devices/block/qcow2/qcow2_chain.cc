#include "devices/block/qcow2/qcow2_chain.h"

#include <sys/stat.h>

#include <set>
#include <utility>

#include "devices/block/disk_format.h"
#include "devices/block/image_file.h"

namespace microvm::qcow2 {

namespace {

using DevIno = std::pair<dev_t, ino_t>;

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

Result<std::unique_ptr<Image>> open_level(const std::string& path, bool read_only, const DiskOptions& opts, int depth,
                                          std::set<DevIno>& seen, const std::string& user_backing,
                                          std::optional<DiskFormat> user_backing_format);

Result<std::unique_ptr<SyncDisk>> open_backing(const std::string& path, DiskFormat fmt, const DiskOptions& opts,
                                               int depth, std::set<DevIno>& seen) {
  if (depth > kMaxChainDepth)
    return fail(ELOOP, "backing chain deeper than " + std::to_string(kMaxChainDepth) + " images at " + path);
  if (fmt == DiskFormat::kRaw) {
    auto f = TRY(open_image_file(path, true, CacheMode::kWriteback, opts.lock, opts.logger));
    struct stat st {};
    if (::fstat(f.fd.get(), &st) != 0) return fail_errno("stat " + path);
    if (!seen.insert({st.st_dev, st.st_ino}).second)
      return fail(ELOOP, "backing chain loop: " + path + " appears twice");
    return std::unique_ptr<SyncDisk>(new RawSyncDisk(std::move(f.fd), f.size));
  }
  auto img = TRY(open_level(path, true, opts, depth, seen, "", std::nullopt));
  return std::unique_ptr<SyncDisk>(std::move(img));
}

Result<std::unique_ptr<Image>> open_level(const std::string& path, bool read_only, const DiskOptions& opts, int depth,
                                          std::set<DevIno>& seen, const std::string& user_backing,
                                          std::optional<DiskFormat> user_backing_format) {
  auto f = open_image_file(path, read_only, CacheMode::kWriteback, opts.lock, opts.logger);
  if (!f) return std::unexpected(f.error());
  struct stat st {};
  if (::fstat(f->fd.get(), &st) != 0) return fail_errno("stat " + path);
  if (!seen.insert({st.st_dev, st.st_ino}).second) return fail(ELOOP, "backing chain loop: " + path + " appears twice");
  Image::Options io;
  io.read_only = read_only;
  io.cache_bytes = opts.qcow2_cache_bytes;
  io.logger = opts.logger;
  auto img = Image::open(std::move(f->fd), io);
  if (!img) return std::unexpected(img.error().context(path));
  const Header& h = (*img)->header();

  std::string backing = user_backing;
  std::optional<DiskFormat> fmt = user_backing_format;
  if (backing.empty() && !h.backing_file.empty()) {
    if (!opts.allow_image_backing)
      return fail(EPERM, path + " names the backing file '" + h.backing_file +
                             "', which is not opened unless you say so: give backing=PATH[,backing_format=FMT] "
                             "(or image_backing=on to trust the name stored in the image)");
    backing = h.backing_file[0] == '/' ? h.backing_file : dir_of(path) + "/" + h.backing_file;
  }
  if (backing.empty()) return img;
  if (!fmt && !h.backing_format.empty()) {
    auto parsed = parse_disk_format(h.backing_format);
    if (!parsed) return fail(EINVAL, path + ": backing format '" + h.backing_format + "' is not supported");
    fmt = *parsed;
  }
  if (!fmt)
    return fail(EINVAL,
                path + ": the backing file's format is not recorded in the image; give backing_format=raw|qcow2");
  auto b = open_backing(backing, *fmt, opts, depth + 1, seen);
  if (!b) return std::unexpected(b.error().context("backing file of " + path));
  (*img)->set_backing(std::move(*b));
  return img;
}

}  // namespace

Result<std::unique_ptr<Image>> open_chain(const DiskOptions& opts) {
  std::set<DevIno> seen;
  return open_level(opts.path, opts.read_only, opts, 0, seen, opts.backing, opts.backing_format);
}

Result<std::unique_ptr<SyncDisk>> open_sync_disk(const std::string& path, DiskFormat format,
                                                 const DiskOptions& chain_opts) {
  std::set<DevIno> seen;
  if (format == DiskFormat::kRaw) return open_backing(path, format, chain_opts, 0, seen);
  auto img = TRY(open_level(path, true, chain_opts, 0, seen, chain_opts.backing, chain_opts.backing_format));
  return std::unique_ptr<SyncDisk>(std::move(img));
}

}  // namespace microvm::qcow2
