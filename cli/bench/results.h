#pragma once
// What a bench invocation produced, before formatting.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/bench/probe_image.h"

namespace microvm::bench {

struct MetricResult {
  std::string name, unit, description;
  bool lower_is_better = true;
  std::map<std::string, std::vector<double>> samples;  // variant -> one value per run
};

struct RunRecord {
  std::string variant;
  int repetition = 0;
  bool ok = false;
  std::string error;
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> details;
};

struct ScenarioResult {
  std::string name, description;
  std::vector<std::string> variants;  // "microvm" first, then baselines
  std::vector<std::string> notes;
  std::vector<MetricResult> metrics;  // in first-seen order
  std::vector<RunRecord> runs;
  std::string prepare_error;
  // Boots a guest (not --device-only).
  bool guest_mode = false;
  // Its numbers depend on guest kernel speed: on a host whose guest kernel mode is emulated
  // they measure the emulator, and the outputs print no ratios (ratios_meaningful() in report.cc).
  bool guest_speed_bound = false;
};

struct Conditions {
  std::string date_utc;
  std::string cpu_model;
  std::string host_kernel;
  unsigned host_cpus = 0;
  std::string loadavg_before, loadavg_after;
  double host_memory_gib = 0;
  uint64_t guest_memory_mib = 0;
  unsigned guest_cpus = 0;
  int repetitions = 0;
  std::string microvm_binary, qemu_version, kernel;
  std::string source_revision;  // git HEAD of the source tree, "+dirty" with local changes
};

struct BenchResults {
  Conditions conditions;
  std::optional<KernelModeProbe> probe;
  std::string probe_error;
  std::vector<ScenarioResult> scenarios;
};

}  // namespace microvm::bench
