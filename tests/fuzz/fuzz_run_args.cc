// Fuzzes `microvm run` argument parsing: the input is split on NUL bytes into argv[1..]
// (argv[0] is "run", as main() passes it). parse_run_args() must return a value or an error
// for anything; when it succeeds, the config must respect the documented limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/run_command.h"

using namespace microvm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;  // long inputs only slow the fuzzer down
  std::vector<std::string> args;
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(data[i]));
    }
  }
  if (!cur.empty() || size == 0) args.push_back(std::move(cur));
  if (args.size() > 64) return 0;

  std::vector<const char*> argv{"run"};
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);  // like a real argv
  auto r = parse_run_args(static_cast<int>(argv.size() - 1), argv.data());
  if (!r) {
    if (r.error().what.empty()) std::abort();  // every error (and the help text) says something
    return 0;
  }
  const VmConfig& vm = r->vm;
  if (vm.cpus < 1 || vm.cpus > 254) std::abort();
  for (const auto& d : vm.disks) {
    if (d.path.empty()) std::abort();
    if (d.format != DiskFormat::kRaw && d.format != DiskFormat::kQcow2) std::abort();
    if (d.serial.size() > 20) std::abort();
    if (!d.backing.empty() && d.format != DiskFormat::kQcow2) std::abort();
  }
  return 0;
}
