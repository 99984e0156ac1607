#include "cli/disk_spec.h"

#include <vector>

#include "base/rate_limit_spec.h"
#include "base/split.h"
#include "devices/block/disk_format.h"

namespace microvm {

namespace {

Result<bool> parse_on_off(std::string_view key, std::string_view v) {
  if (v == "on" || v == "true" || v == "yes" || v == "1") return true;
  if (v == "off" || v == "false" || v == "no" || v == "0") return false;
  return fail(EINVAL, "disk option " + std::string(key) + "=" + std::string(v) + ": expected on or off");
}

}  // namespace

Result<DiskSpec> parse_disk_spec(std::string_view spec) {
  auto parts = split(spec, ',');
  DiskSpec out;
  if (parts[0].empty())
    return fail(EINVAL, "disk '" + std::string(spec) + "': the path is empty (PATH,format=raw|qcow2,...)");
  out.options.path = std::string(parts[0]);
  bool have_format = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view kv = parts[i];
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos)
      return fail(EINVAL,
                  "disk option '" + std::string(kv) + "': expected key=value (paths containing ',' are not supported)");
    std::string_view key = kv.substr(0, eq), val = kv.substr(eq + 1);
    if (key == "format") {
      auto f = parse_disk_format(val);
      if (!f) return std::unexpected(f.error().context("disk option format"));
      out.options.format = *f;
      have_format = true;
    } else if (key == "readonly" || key == "read-only" || key == "ro") {
      out.options.read_only = TRY(parse_on_off(key, val));
    } else if (key == "cache") {
      if (val == "none")
        out.options.cache = CacheMode::kNone;
      else if (val == "writeback")
        out.options.cache = CacheMode::kWriteback;
      else
        return fail(EINVAL, "disk option cache=" + std::string(val) + ": expected none or writeback");
    } else if (key == "serial") {
      if (val.size() > 20) return fail(EINVAL, "disk option serial: at most 20 bytes (virtio-blk ID string)");
      out.serial = std::string(val);
    } else if (key == "backing") {
      if (val.empty()) return fail(EINVAL, "disk option backing: empty path");
      out.options.backing = std::string(val);
    } else if (key == "backing_format" || key == "backing-format") {
      auto f = parse_disk_format(val);
      if (!f) return std::unexpected(f.error().context("disk option backing_format"));
      out.options.backing_format = *f;
    } else if (key == "image_backing" || key == "image-backing") {
      out.options.allow_image_backing = TRY(parse_on_off(key, val));
    } else if (key == "engine" || key == "aio") {
      if (val == "auto")
        out.options.engine = EngineKind::kAuto;
      else if (val == "io_uring")
        out.options.engine = EngineKind::kIoUring;
      else if (val == "sync" || val == "threads")
        out.options.engine = EngineKind::kSync;
      else
        return fail(EINVAL, "disk option engine=" + std::string(val) + ": expected auto, io_uring or sync");
    } else if (auto rate = parse_rate_limit_option(key, val, "iops", out.rate_limit); !rate) {
      return std::unexpected(rate.error().context("disk option"));
    } else if (!*rate) {
      return fail(EINVAL, "unknown disk option '" + std::string(key) +
                              "' (known: format, readonly, cache, serial, backing, backing_format, image_backing, "
                              "engine, bps, bps_burst, iops, iops_burst)");
    }
  }
  if (auto ok = check_rate_limit(out.rate_limit, "iops"); !ok)
    return std::unexpected(ok.error().context("disk option"));
  if (!have_format)
    return fail(EINVAL, "disk " + out.options.path +
                            ": format= is required (format=raw or format=qcow2); images are never probed");
  if (!out.options.backing.empty() && out.options.format != DiskFormat::kQcow2)
    return fail(EINVAL, "disk option backing: only qcow2 images have a backing file");
  return out;
}

}  // namespace microvm
