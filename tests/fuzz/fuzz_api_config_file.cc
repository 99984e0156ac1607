// Fuzzes --config-file: Firecracker's JSON configuration document (boot-source, drives with
// rate limiters, network interfaces with rx/tx limiters, machine-config, vsock, logger,
// metrics) applied through the API's handlers. Whatever the text, it is applied or refused
// with a message naming "config file"; a document that was applied yields a VmConfig whose
// rate limits are ones the devices can take (a rate with a positive bucket).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/config_file.h"
#include "api/controller.h"

using namespace microvm;
using namespace microvm::api;

namespace {

class NoLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return fail(EINVAL, "not started while fuzzing"); }
  void stop() override {}
};

void check_limit(const IoLimit& l) {
  for (const BucketLimit* b : {&l.bytes, &l.ops}) {
    if (!b->limited() && b->one_time_burst != 0) std::abort();  // a burst without a rate
    if (b->limited() && b->burst == 0) std::abort();            // Firecracker's size is the bucket
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  NoLauncher launcher;
  Controller controller(VmConfig{}, InstanceInfo{}, launcher);
  // 'metrics' is parsed and checked as usual, but never creates a file at a fuzzed path.
  controller.set_metrics_opener([](const std::string& path) -> Result<MetricsFile> {
    return fail(EACCES, "metrics_path " + path + ": not opened while fuzzing");
  });
  auto applied = apply_config_document(controller, text);
  if (!applied) {
    if (applied.error().what.rfind("config file", 0) != 0) std::abort();
    return 0;
  }
  VmConfig c = controller.vm_config();
  if (c.kernel_path.empty()) std::abort();  // boot-source is required
  for (const auto& d : c.disks) check_limit(d.rate_limit);
  for (const auto& n : c.nets) {
    check_limit(n.rate_limit);
    if (n.rx_rate_limit) check_limit(*n.rx_rate_limit);
  }
  return 0;
}
