#pragma once
// qemu-img's rendering of internal snapshots, shared by `snapshot -l` and `info`.
#include <nlohmann/json.hpp>
#include <vector>

#include "devices/block/qcow2/qcow2_snapshot.h"

namespace microvm::img {

// "Snapshot list:", the column header and one row per snapshot, as qemu-img 7.2 prints them
// (dates in local time).
void print_snapshot_table(const std::vector<qcow2::SnapshotInfo>& snaps);
// The "snapshots" array of `info --output=json`.
nlohmann::ordered_json snapshots_json(const std::vector<qcow2::SnapshotInfo>& snaps);

}  // namespace microvm::img
