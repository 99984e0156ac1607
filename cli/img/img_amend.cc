// `amend [-f qcow2] [-p] [-q] -o compat=0.10|1.1,lazy_refcounts=on|off FILE`: changes a qcow2
// image's compatibility level or lazy-refcounts flag in place, under the image's exclusive lock
// (an image a VM or qemu-io uses is refused). A downgrade that would lose something is refused
// with the reason; the image is then unchanged.
#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_amend.h"

namespace microvm::img {

namespace {

Result<bool> on_off(const std::string& k, const std::string& v) {
  if (v == "on" || v == "true") return true;
  if (v == "off" || v == "false") return false;
  return fail(EINVAL, k + " must be on or off");
}

Result<qcow2::AmendOptions> amend_options(const std::string& o) {
  qcow2::AmendOptions ao;
  for (auto& [k, v] : TRY(parse_o(o))) {
    if (k == "compat") {
      if (v == "0.10" || v == "v2")
        ao.version = 2;
      else if (v == "1.1" || v == "v3")
        ao.version = 3;
      else
        return fail(EINVAL, "compat must be 0.10 or 1.1");
    } else if (k == "lazy_refcounts") {
      ao.lazy_refcounts = TRY(on_off(k, v));
    } else {
      return fail(EINVAL, "unsupported amend option '" + k + "' (compat, lazy_refcounts)");
    }
  }
  return ao;
}

}  // namespace

int cmd_amend(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "-o", "-t"}, {"-p", "-q", "--force"});
  if (!a) return usage_error("amend", a.error().what);
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("amend", ok.error().what);
  if (a->positional.size() != 1) return usage_error("amend", "expected FILE");
  if (!a->has("-o")) return usage_error("amend", "must specify options (-o)");
  auto opts = amend_options(a->get("-o"));
  if (!opts) return usage_error("amend", opts.error().what);
  const std::string& path = a->positional[0];
  // The lock first: the format is read from a file nobody else writes.
  auto file = open_image_file(path, false, CacheMode::kWriteback, true, nullptr);
  if (!file) return failure("amend: " + file.error().what);
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return failure("amend: " + fmt.error().what);
  if (*fmt != DiskFormat::kQcow2) return failure("amend: format 'raw' has no options to amend");
  if (auto r = qcow2::amend(file->fd.get(), *opts); !r) return failure("amend " + path + ": " + r.error().what);
  return 0;
}

}  // namespace microvm::img
