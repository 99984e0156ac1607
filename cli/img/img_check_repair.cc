// `check -r leaks|all`: repair refcounts under the image's exclusive lock, then check again
// and report as qemu-img 7.2 does ("The following inconsistencies were found and repaired",
// "Double checking the fixed image now..."). The exit code is that of the second check.
#include <fcntl.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "devices/block/image_lock.h"
#include "devices/block/qcow2/qcow2_check.h"
#include "devices/block/qcow2/qcow2_repair.h"

namespace microvm::img {

namespace {

constexpr const char* kUsage = "usage: microvm img check -r leaks|all [-f FMT] [--output=human|json] [-q] FILE\n";

void print_report(const qcow2::CheckReport& r) {
  if (r.corruptions)
    std::printf(
        "\n%llu errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt "
        "it.\n",
        static_cast<unsigned long long>(r.corruptions));
  if (r.leaks)
    std::printf(
        "\n%llu leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n",
        static_cast<unsigned long long>(r.leaks));
  if (!r.corruptions && !r.leaks) std::printf("No errors were found on the image.\n");
  double total = r.guest_clusters ? static_cast<double>(r.guest_clusters) : 1;
  double alloc = r.allocated_clusters ? static_cast<double>(r.allocated_clusters) : 1;
  std::printf("%llu/%llu = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\nImage end offset: %llu\n",
              static_cast<unsigned long long>(r.allocated_clusters), static_cast<unsigned long long>(r.guest_clusters),
              100.0 * static_cast<double>(r.allocated_clusters) / total,
              100.0 * static_cast<double>(r.fragmented_clusters) / alloc,
              100.0 * static_cast<double>(r.compressed_clusters) / alloc,
              static_cast<unsigned long long>(r.image_end_offset));
}

}  // namespace

int cmd_check_repair(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "--output", "-r"}, {"--json", "-q", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 1) return print_error("check: expected FILE"), std::fputs(kUsage, stderr), 2;
  std::string mode_arg = a->get("-r"), out = a->get("--output", "human");
  if (mode_arg != "leaks" && mode_arg != "all") return print_error("check: -r takes leaks or all"), 2;
  if (out != "human" && out != "json") return print_error("check: --output must be human or json"), 2;
  const bool json = a->has("--json") || out == "json", quiet = a->has("-q");
  const auto mode = mode_arg == "all" ? qcow2::RepairMode::kAll : qcow2::RepairMode::kLeaks;
  const std::string& path = a->positional[0];
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return print_error(fmt.error().what), a->has("-f") ? 2 : 1;
  if (*fmt == DiskFormat::kRaw) {
    std::printf("This image format does not support checks\n");
    return 63;  // as qemu-img
  }
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return print_error("open " + path + ": " + std::strerror(errno)), 1;
  // A repair writes refcount blocks: nobody else may have the image open.
  if (auto l = lock_image(fd.get(), true, path); !l) return print_error(l.error().what), 1;
  auto before = qcow2::check_image(fd.get());
  if (!before) return print_error("check could not run: " + before.error().what), 1;
  for (const auto& m : before->messages) std::fprintf(stderr, "%s\n", m.c_str());
  auto fixed = qcow2::repair_refcounts(fd.get(), *before, mode);
  if (!fixed) return print_error("repair failed: " + fixed.error().what), 1;
  for (const auto& m : fixed->messages) std::fprintf(stderr, "%s\n", m.c_str());
  // COPIED flags are judged against the refcounts as they are now, after the repair above.
  if (mode == qcow2::RepairMode::kAll && !before->copied_mismatches.empty()) {
    auto recheck = qcow2::check_image(fd.get());
    if (!recheck) return print_error("check could not run: " + recheck.error().what), 1;
    auto flags = qcow2::repair_copied_flags(fd.get(), *recheck);
    if (!flags) return print_error("repair failed: " + flags.error().what), 1;
    for (const auto& m : flags->messages) std::fprintf(stderr, "%s\n", m.c_str());
    fixed->corruptions_fixed += flags->corruptions_fixed;
  }
  auto after = qcow2::check_image(fd.get());
  if (!after) return print_error("check could not run: " + after.error().what), 1;
  // A clean image loses its dirty (lazy refcounts) and corrupt bits, as with qemu-img.
  if (!after->corruptions && !after->leaks) {
    if (auto c = qcow2::mark_clean(fd.get()); !c) return print_error(c.error().what), 1;
  }
  if (json) {
    nlohmann::ordered_json j;
    j["image-end-offset"] = after->image_end_offset;
    j["total-clusters"] = after->guest_clusters;
    j["check-errors"] = 0;
    if (after->leaks) j["leaks"] = after->leaks;
    if (after->corruptions) j["corruptions"] = after->corruptions;
    if (fixed->leaks_fixed) j["leaks-fixed"] = fixed->leaks_fixed;
    if (fixed->corruptions_fixed) j["corruptions-fixed"] = fixed->corruptions_fixed;
    j["allocated-clusters"] = after->allocated_clusters;
    j["filename"] = path;
    j["format"] = "qcow2";
    j["fragmented-clusters"] = after->fragmented_clusters;
    if (after->compressed_clusters) j["compressed-clusters"] = after->compressed_clusters;
    std::printf("%s\n", j.dump(4).c_str());
  } else if (!quiet) {
    if (fixed->leaks_fixed || fixed->corruptions_fixed) {
      std::printf(
          "The following inconsistencies were found and repaired:\n\n    %llu leaked clusters\n    %llu corruptions\n\n"
          "Double checking the fixed image now...\n",
          static_cast<unsigned long long>(fixed->leaks_fixed),
          static_cast<unsigned long long>(fixed->corruptions_fixed));
    }
    for (const auto& m : after->messages) std::fprintf(stderr, "%s\n", m.c_str());
    print_report(*after);
  }
  if (after->corruptions) return 2;
  if (after->leaks) return 3;
  return 0;
}

}  // namespace microvm::img
