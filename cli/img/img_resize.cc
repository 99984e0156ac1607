#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "cli/img/img_internal.h"
#include "cli/img/sizes.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "devices/block/qcow2/qcow2_image.h"

namespace microvm::img {

int cmd_resize(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f"}, {"--shrink", "-q"}, true);
  if (!a) return usage_error("resize", a.error().what);
  if (a->positional.size() != 2) return usage_error("resize", "expected FILE [+|-]SIZE");
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("resize", ok.error().what);
  const std::string& path = a->positional[0];
  std::string spec = a->positional[1];
  int sign = 0;
  if (!spec.empty() && (spec[0] == '+' || spec[0] == '-')) {
    sign = spec[0] == '+' ? 1 : -1;
    spec = spec.substr(1);
  }
  auto delta = parse_size(spec);
  if (!delta) return usage_error("resize", delta.error().what);
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return failure(fmt.error().what);
  std::unique_ptr<qcow2::Image> img;
  Fd raw;
  uint64_t cur = 0;
  if (*fmt == DiskFormat::kQcow2) {
    // The backing chain is opened (read-only) as qemu-img does: growing an overlay must know
    // how far the backing file reaches, so the grown range can be made to read as zeroes.
    DiskOptions chain;
    chain.path = path;
    chain.format = DiskFormat::kQcow2;
    chain.allow_image_backing = true;
    auto i = qcow2::open_chain(chain);
    if (!i) return failure(i.error().what);
    img = std::move(*i);
    cur = img->size();
  } else {
    auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
    if (!file) return failure(file.error().what);
    raw = std::move(file->fd);
    cur = file->size;
  }
  uint64_t target;
  if (sign > 0) {
    if (*delta > UINT64_MAX - cur) return failure("resize: size overflows");
    target = cur + *delta;
  } else if (sign < 0) {
    if (*delta > cur) return failure("resize: cannot shrink below zero");
    target = cur - *delta;
  } else {
    target = *delta;
  }
  if (target % 512) return failure("resize: the new size must be a multiple of 512");
  if (target < cur && !a->has("--shrink"))
    return failure("resize: use the --shrink option to shrink an image (data past the new end is lost)");
  if (img) {
    auto r = img->resize(target);
    if (!r) return failure("resize: " + r.error().what);
    if (int rc = img->flush()) return failure(std::string("resize: ") + std::strerror(-rc));
  } else {
    if (::ftruncate(raw.get(), static_cast<off_t>(target)) != 0)
      return failure("resize: " + std::string(std::strerror(errno)));
  }
  if (!a->has("-q")) std::printf("Image resized.\n");
  return 0;
}

}  // namespace microvm::img
