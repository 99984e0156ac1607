#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "cli/img/img_internal.h"
#include "cli/img/img_snapshot_table.h"
#include "cli/img/sizes.h"
#include "devices/block/file_io.h"
#include "devices/block/image_file.h"
#include "devices/block/qcow2/qcow2_format.h"
#include "devices/block/qcow2/qcow2_snapshot.h"

namespace microvm::img {

int cmd_info(int argc, char** argv) {
  auto a = scan_args(argc, argv, {"-f", "--output"}, {"--json", "-U", "--force-share"});
  if (!a) return usage_error("info", a.error().what);
  if (a->positional.size() != 1) return usage_error("info", "expected FILE");
  if (auto ok = check_format_options(*a, {"-f"}); !ok) return usage_error("info", ok.error().what);
  const std::string& path = a->positional[0];
  bool json = a->has("--json") || a->get("--output") == "json";
  auto fmt = format_arg(*a, "-f", path);
  if (!fmt) return failure(fmt.error().what);
  // Inspection only reads the header, so it takes no lock (like qemu-img info -U).
  auto opened = open_regular_or_block(path, O_RDONLY);
  if (!opened) return failure(opened.error().what);
  Fd fd = std::move(*opened);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return failure("stat " + path);
  uint64_t file_size = static_cast<uint64_t>(st.st_size);
  uint64_t disk_size = static_cast<uint64_t>(st.st_blocks) * 512;
  nlohmann::ordered_json j;
  j["virtual-size"] = file_size;
  j["filename"] = path;
  j["format"] = to_string(*fmt);
  j["actual-size"] = disk_size;
  j["dirty-flag"] = false;
  if (*fmt == DiskFormat::kRaw) {
    if (json) {
      std::printf("%s\n", j.dump(4).c_str());
    } else {
      std::printf("image: %s\nfile format: raw\nvirtual size: %s (%llu bytes)\ndisk size: %s\n", path.c_str(),
                  format_size(file_size).c_str(), static_cast<unsigned long long>(file_size),
                  format_size(disk_size).c_str());
    }
    return 0;
  }
  std::vector<uint8_t> head(std::min<uint64_t>(file_size, 1u << qcow2::kMaxClusterBits));
  if (int rc = pread_full(fd.get(), head.data(), head.size(), 0))
    return failure("read " + path + ": " + std::strerror(-rc));
  auto h = qcow2::parse_header(head, file_size);
  if (!h) return failure(path + ": " + h.error().what);
  auto snaps = qcow2::read_snapshots(fd.get(), *h, file_size);
  if (!snaps) return failure(path + ": " + snaps.error().what);
  if (!snaps->empty()) {  // qemu-img lists them first
    nlohmann::ordered_json with{{"snapshots", snapshots_json(*snaps)}};
    with.update(j);
    j = std::move(with);
  }
  bool corrupt = h->incompatible_features & qcow2::kIncompatCorrupt;
  bool lazy = h->compatible_features & qcow2::kCompatLazyRefcounts;
  const char* compat = h->version == 2 ? "0.10" : "1.1";
  const char* ctype = h->compression_type == qcow2::CompressionType::kZstd ? "zstd" : "zlib";
  j["virtual-size"] = h->size;
  j["cluster-size"] = h->cluster_size();
  if (!h->backing_file.empty()) {
    j["backing-filename"] = h->backing_file;
    if (!h->backing_format.empty()) j["backing-filename-format"] = h->backing_format;
  }
  j["dirty-flag"] = (h->incompatible_features & qcow2::kIncompatDirty) != 0;
  nlohmann::ordered_json data;
  data["compat"] = compat;
  data["compression-type"] = ctype;
  if (h->version >= 3) data["lazy-refcounts"] = lazy;
  data["refcount-bits"] = h->refcount_bits();
  if (h->version >= 3) data["corrupt"] = corrupt;
  if (h->version >= 3) data["extended-l2"] = false;  // qemu-img shows it for v3 only
  j["format-specific"] = {{"type", "qcow2"}, {"data", data}};
  if (json) {
    std::printf("%s\n", j.dump(4).c_str());
    return 0;
  }
  std::printf("image: %s\nfile format: qcow2\nvirtual size: %s (%llu bytes)\ndisk size: %s\ncluster_size: %llu\n",
              path.c_str(), format_size(h->size).c_str(), static_cast<unsigned long long>(h->size),
              format_size(disk_size).c_str(), static_cast<unsigned long long>(h->cluster_size()));
  if (!h->backing_file.empty()) {
    std::printf("backing file: %s\n", h->backing_file.c_str());
    if (!h->backing_format.empty()) std::printf("backing file format: %s\n", h->backing_format.c_str());
  }
  if (!snaps->empty()) print_snapshot_table(*snaps);
  std::printf("Format specific information:\n    compat: %s\n    compression type: %s\n", compat, ctype);
  if (h->version >= 3) std::printf("    lazy refcounts: %s\n", lazy ? "true" : "false");
  std::printf("    refcount bits: %u\n", h->refcount_bits());
  if (h->version >= 3) std::printf("    corrupt: %s\n", corrupt ? "true" : "false");
  if (h->version >= 3) std::printf("    extended l2: false\n");
  return 0;
}

}  // namespace microvm::img
