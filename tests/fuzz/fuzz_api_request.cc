// Fuzzes the API's request path: raw bytes through the HTTP parser (fed in two pieces, at a
// split point the input chooses) and every parsed request through the router and handlers,
// against a launcher that accepts every start. Whatever the bytes, each answer must be one
// of the documented statuses (never 500: handlers report errors as values), and every body
// must be JSON, with a fault_message for errors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "api/event_hub.h"
#include "api/http_connection.h"
#include "api/router.h"

using namespace microvm;
using namespace microvm::api;

namespace {

class AcceptingLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return {}; }
  void stop() override {}
  // Run-time changes succeed too, so the fuzzer reaches past their parsing (PATCH /drives,
  // PATCH /network-interfaces and their rate-limiter objects).
  Result<void> swap_disk(const std::string&, const std::string&, std::optional<DiskFormat>) override { return {}; }
  Result<void> set_disk_rate_limit(const std::string&, const RateLimitUpdate&) override { return {}; }
  Result<void> set_net_rate_limit(const std::string&, const RateLimitUpdate&, const RateLimitUpdate&) override {
    return {};
  }
};

void check(const HttpResponse& r) {
  if (r.event_stream) {
    if (r.status != 200) std::abort();
    return;
  }
  switch (r.status) {
    case 200:
    case 204:
    case 400:
    case 404:
    case 405:
    case 413:
    case 431:
      break;
    default:
      std::abort();
  }
  if (r.status == 204) {
    if (!r.body.empty()) std::abort();
    return;
  }
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) std::abort();
  if (r.status >= 400 && !(j.contains("fault_message") && j["fault_message"].is_string())) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  size_t split = data[0] % size;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  AcceptingLauncher launcher;
  Controller controller(VmConfig{}, InstanceInfo{}, launcher);
  // PUT /metrics is parsed and checked as usual, but never creates a file at a fuzzed path.
  controller.set_metrics_opener([](const std::string& path) -> Result<MetricsFile> {
    return fail(EACCES, "metrics_path " + path + ": not opened while fuzzing");
  });
  static auto hub = EventHub::create();  // so GET /events takes its streaming path
  if (hub) controller.set_event_hub(hub->get());
  HttpConnection conn(HttpLimits{.max_header_bytes = 2048, .max_body_bytes = 4096});
  std::vector<HttpConnection::Parsed> requests;
  split = split > bytes.size() ? bytes.size() : split;
  auto err = conn.feed(bytes.substr(0, split), requests);
  if (!err) err = conn.feed(bytes.substr(split), requests);
  if (err) check(*err);
  for (const auto& p : requests) {
    if (p.request.body.size() > 4096) std::abort();  // the limit held
    check(route(controller, p.request));
  }
  return 0;
}
