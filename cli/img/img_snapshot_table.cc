#include "cli/img/img_snapshot_table.h"

#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "cli/img/sizes.h"

namespace microvm::img {

void print_snapshot_table(const std::vector<qcow2::SnapshotInfo>& snaps) {
  std::printf("Snapshot list:\n");
  std::printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
  for (const auto& s : snaps) {
    char date[64] = "";
    std::time_t t = s.date_sec;
    struct tm tm {};
    if (::localtime_r(&t, &tm)) std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    const uint64_t secs = s.vm_clock_nsec / 1000000000;
    char clock[64];
    std::snprintf(clock, sizeof clock, "%02d:%02d:%02d.%03d", static_cast<int>(secs / 3600),
                  static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60),
                  static_cast<int>((s.vm_clock_nsec / 1000000) % 1000));
    char icount[32] = "";
    if (s.icount != UINT64_MAX) std::snprintf(icount, sizeof icount, "%" PRId64, static_cast<int64_t>(s.icount));
    std::printf("%-9s %-16s %8s%20s%13s%11s\n", s.id.c_str(), s.name.c_str(), format_size(s.vm_state_size).c_str(),
                date, clock, icount);
  }
}

nlohmann::ordered_json snapshots_json(const std::vector<qcow2::SnapshotInfo>& snaps) {
  auto arr = nlohmann::ordered_json::array();
  for (const auto& s : snaps) {
    nlohmann::ordered_json e;
    if (s.icount != UINT64_MAX) e["icount"] = s.icount;
    e["vm-clock-nsec"] = s.vm_clock_nsec % 1000000000;
    e["name"] = s.name;
    e["date-sec"] = s.date_sec;
    e["date-nsec"] = s.date_nsec;
    e["vm-clock-sec"] = s.vm_clock_nsec / 1000000000;
    e["id"] = s.id;
    e["vm-state-size"] = s.vm_state_size;
    arr.push_back(std::move(e));
  }
  return arr;
}

}  // namespace microvm::img
