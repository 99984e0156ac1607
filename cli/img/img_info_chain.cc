// `info --backing-chain`: the image and every backing file below it, each described as `info`
// describes one image; JSON output is a list, top first, as qemu-img prints it.
#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/img/img_chain.h"
#include "cli/img/img_internal.h"
#include "cli/img/img_snapshot_table.h"
#include "cli/img/sizes.h"

namespace microvm::img {

namespace {

Result<nlohmann::ordered_json> describe(const ChainLevel& level) {
  struct stat st {};
  if (::fstat(level.fd(), &st) != 0) return fail_errno("stat " + level.path);
  nlohmann::ordered_json j;
  // Key order as qemu-img 7.2 prints it.
  const qcow2::Header* h = level.qcow2 ? &level.qcow2->header() : nullptr;
  if (h) {
    auto snaps = TRY(qcow2::read_snapshots(level.fd(), *h, static_cast<uint64_t>(st.st_size)));
    if (!snaps.empty()) j["snapshots"] = snapshots_json(snaps);
  }
  if (h && !h->backing_file.empty() && !h->backing_format.empty()) j["backing-filename-format"] = h->backing_format;
  j["virtual-size"] = level.size;
  j["filename"] = level.path;
  if (h) j["cluster-size"] = h->cluster_size();
  j["format"] = to_string(level.format);
  j["actual-size"] = static_cast<uint64_t>(st.st_blocks) * 512;
  if (h) {
    nlohmann::ordered_json data;
    data["compat"] = h->version == 2 ? "0.10" : "1.1";
    data["compression-type"] = h->compression_type == qcow2::CompressionType::kZstd ? "zstd" : "zlib";
    if (h->version >= 3) data["lazy-refcounts"] = (h->compatible_features & qcow2::kCompatLazyRefcounts) != 0;
    data["refcount-bits"] = h->refcount_bits();
    if (h->version >= 3) data["corrupt"] = (h->incompatible_features & qcow2::kIncompatCorrupt) != 0;
    if (h->version >= 3) data["extended-l2"] = false;  // qemu-img omits it for compat 0.10
    j["format-specific"] = {{"type", "qcow2"}, {"data", data}};
    if (!h->backing_file.empty()) {
      j["full-backing-filename"] = backing_path(level.path, h->backing_file);
      j["backing-filename"] = h->backing_file;
    }
  }
  j["dirty-flag"] = h && (h->incompatible_features & qcow2::kIncompatDirty) != 0;
  return j;
}

void print_human(const nlohmann::ordered_json& j) {
  auto u = [](const nlohmann::ordered_json& v) { return static_cast<unsigned long long>(v.get<uint64_t>()); };
  std::printf("image: %s\nfile format: %s\nvirtual size: %s (%llu bytes)\ndisk size: %s\n",
              j["filename"].get<std::string>().c_str(), j["format"].get<std::string>().c_str(),
              format_size(j["virtual-size"].get<uint64_t>()).c_str(), u(j["virtual-size"]),
              format_size(j["actual-size"].get<uint64_t>()).c_str());
  if (!j.contains("format-specific")) return;
  std::printf("cluster_size: %llu\n", u(j["cluster-size"]));
  if (j.contains("backing-filename")) {
    auto name = j["backing-filename"].get<std::string>(), full = j["full-backing-filename"].get<std::string>();
    if (name == full)
      std::printf("backing file: %s\n", name.c_str());
    else
      std::printf("backing file: %s (actual path: %s)\n", name.c_str(), full.c_str());
    if (j.contains("backing-filename-format"))
      std::printf("backing file format: %s\n", j["backing-filename-format"].get<std::string>().c_str());
  }
  if (j.contains("snapshots")) {  // back from the JSON form, which holds every column
    std::vector<qcow2::SnapshotInfo> snaps;
    for (const auto& e : j["snapshots"]) {
      qcow2::SnapshotInfo s;
      s.id = e["id"].get<std::string>();
      s.name = e["name"].get<std::string>();
      s.date_sec = e["date-sec"].get<uint32_t>();
      s.vm_clock_nsec = e["vm-clock-sec"].get<uint64_t>() * 1000000000 + e["vm-clock-nsec"].get<uint64_t>();
      s.vm_state_size = e["vm-state-size"].get<uint64_t>();
      if (e.contains("icount")) s.icount = e["icount"].get<uint64_t>();
      snaps.push_back(std::move(s));
    }
    print_snapshot_table(snaps);
  }
  const auto& d = j["format-specific"]["data"];
  std::printf("Format specific information:\n    compat: %s\n    compression type: %s\n",
              d["compat"].get<std::string>().c_str(), d["compression-type"].get<std::string>().c_str());
  if (d.contains("lazy-refcounts"))
    std::printf("    lazy refcounts: %s\n", d["lazy-refcounts"].get<bool>() ? "true" : "false");
  std::printf("    refcount bits: %u\n", d["refcount-bits"].get<unsigned>());
  if (d.contains("corrupt")) std::printf("    corrupt: %s\n", d["corrupt"].get<bool>() ? "true" : "false");
  if (d.contains("extended-l2")) std::printf("    extended l2: false\n");
}

constexpr const char* kUsage = "usage: microvm img info --backing-chain [-f FMT] [--output=human|json] [-U] FILE\n";

}  // namespace

int cmd_info_chain(int argc, char** argv) {
  auto a =
      scan_args(argc, argv, {"-f", "--output"}, {"--backing-chain", "--json", "-U", "--force-share", "-h", "--help"});
  if (!a) return print_error(a.error().what), std::fputs(kUsage, stderr), 2;
  if (a->has("-h") || a->has("--help")) return std::fputs(kUsage, stdout), 0;
  if (a->positional.size() != 1) return print_error("info: expected FILE"), std::fputs(kUsage, stderr), 2;
  std::string out = a->get("--output", "human");
  if (out != "human" && out != "json") return print_error("info: --output must be human or json"), 2;
  bool json = a->has("--json") || out == "json";
  std::optional<DiskFormat> fmt;
  if (a->has("-f")) {
    auto f = parse_disk_format(a->get("-f"));
    if (!f) return print_error(f.error().what), 2;
    fmt = *f;
  }
  // Inspection only reads headers, so it takes no lock (like `info` itself).
  auto chain = open_chain_levels(a->positional[0], fmt, false);
  if (!chain) return print_error(chain.error().what), 1;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& level : *chain) {
    auto j = describe(level);
    if (!j) return print_error(j.error().what), 1;
    list.push_back(std::move(*j));
  }
  if (json) {
    std::printf("%s\n", list.dump(4).c_str());
    return 0;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (i) std::printf("\n");
    print_human(list[i]);
  }
  return 0;
}

}  // namespace microvm::img
