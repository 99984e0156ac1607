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
  if (!a) return print_error(a.error().what), 1;
  if (a->positional.size() != 2) return print_error("resize: expected FILE [+|-]SIZE"), 1;
  const std::string& path = a->positional[0];
  std::string spec = a->positional[1];
  int sign = 0;
  if (!spec.empty() && (spec[0] == '+' || spec[0] == '-')) {
    sign = spec[0] == '+' ? 1 : -1;
    spec = spec.substr(1);
  }
  auto delta = parse_size(spec);
  if (!delta) return print_error(delta.error().what), 1;
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return print_error(fmt.error().what), 1;
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
    if (!i) return print_error(i.error().what), 1;
    img = std::move(*i);
    cur = img->size();
  } else {
    auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
    if (!file) return print_error(file.error().what), 1;
    raw = std::move(file->fd);
    cur = file->size;
  }
  uint64_t target;
  if (sign > 0) {
    if (*delta > UINT64_MAX - cur) return print_error("resize: size overflows"), 1;
    target = cur + *delta;
  } else if (sign < 0) {
    if (*delta > cur) return print_error("resize: cannot shrink below zero"), 1;
    target = cur - *delta;
  } else {
    target = *delta;
  }
  if (target % 512) return print_error("resize: the new size must be a multiple of 512"), 1;
  if (target < cur && !a->has("--shrink"))
    return print_error("resize: use the --shrink option to shrink an image (data past the new end is lost)"), 1;
  if (img) {
    auto r = img->resize(target);
    if (!r) return print_error("resize: " + r.error().what), 1;
    if (int rc = img->flush()) return print_error(std::string("resize: ") + std::strerror(-rc)), 1;
  } else {
    if (::ftruncate(raw.get(), static_cast<off_t>(target)) != 0)
      return print_error("resize: " + std::string(std::strerror(errno))), 1;
  }
  if (!a->has("-q")) std::printf("Image resized.\n");
  return 0;
}

}  // namespace microvm::img
