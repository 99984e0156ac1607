#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "devices/block/image_file.h"
#include "devices/block/image_lock.h"
#include "devices/block/qcow2/qcow2_check.h"

namespace microvm::img {

int cmd_check(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "--output"}, {"--json", "-q", "-U", "--force-share"});
  if (!a) return usage_error("check", a.error().what);
  if (a->positional.size() != 1) return usage_error("check", "expected FILE");
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("check", ok.error().what);
  const std::string& path = a->positional[0];
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return failure(fmt.error().what);
  if (*fmt == DiskFormat::kRaw) {
    std::printf("This image format does not support checks\n");
    return 63;  // as qemu-img
  }
  auto opened = open_regular_or_block(path, O_RDONLY);
  if (!opened) return failure(opened.error().what);
  Fd fd = std::move(*opened);
  if (!a->has("-U") && !a->has("--force-share")) {
    // A writer may have metadata in its cache: checking under it would report noise.
    auto l = lock_image(fd.get(), false, path);
    if (!l) return failure(l.error().what + " (use -U to check anyway)");
  }
  auto r = qcow2::check_image(fd.get());
  if (!r) return failure("check could not run: " + r.error().what);
  bool json = a->has("--json") || a->get("--output") == "json";
  if (json) {
    nlohmann::ordered_json j;
    j["image-end-offset"] = r->image_end_offset;
    j["total-clusters"] = r->guest_clusters;
    j["check-errors"] = 0;
    if (r->leaks) j["leaks"] = r->leaks;
    if (r->corruptions) j["corruptions"] = r->corruptions;
    j["allocated-clusters"] = r->allocated_clusters;
    j["filename"] = path;
    j["format"] = "qcow2";
    j["fragmented-clusters"] = r->fragmented_clusters;
    j["compressed-clusters"] = r->compressed_clusters;
    std::printf("%s\n", j.dump(4).c_str());
  } else if (!a->has("-q")) {
    for (const auto& m : r->messages) std::printf("%s\n", m.c_str());
    if (r->corruptions)
      std::printf(
          "\n%llu errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt "
          "it.\n",
          static_cast<unsigned long long>(r->corruptions));
    if (r->leaks)
      std::printf(
          "\n%llu leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n",
          static_cast<unsigned long long>(r->leaks));
    if (!r->corruptions && !r->leaks) std::printf("No errors were found on the image.\n");
    double total = r->guest_clusters ? static_cast<double>(r->guest_clusters) : 1;
    double alloc = r->allocated_clusters ? static_cast<double>(r->allocated_clusters) : 1;
    std::printf("%llu/%llu = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\nImage end offset: %llu\n",
                static_cast<unsigned long long>(r->allocated_clusters),
                static_cast<unsigned long long>(r->guest_clusters),
                100.0 * static_cast<double>(r->allocated_clusters) / total,
                100.0 * static_cast<double>(r->fragmented_clusters) / alloc,
                100.0 * static_cast<double>(r->compressed_clusters) / alloc,
                static_cast<unsigned long long>(r->image_end_offset));
  }
  if (r->corruptions) return 2;
  if (r->leaks) return 3;
  return 0;
}

}  // namespace microvm::img
