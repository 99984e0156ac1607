// The balloon (Firecracker's /balloon endpoints): PUT configures it before start, PATCH
// resizes it while the guest runs, GET reads the configuration and the guest's statistics.
#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {
namespace {

HttpResponse ok_json(const Json& j) { return HttpResponse{200, dump_json(j)}; }

// Firecracker's amount_mib is a u32 of MiB; the size is checked against guest memory at start.
constexpr uint64_t kMaxMib = 1ull << 32;

}  // namespace

HttpResponse put_balloon(Controller& c, const std::string& body) {
  if (c.state() != InstanceState::kNotStarted)
    return fault(400, "cannot add a balloon after the microVM has started (PATCH /balloon resizes it)");
  auto j = parse_object(
      body, {"amount_mib", "deflate_on_oom", "stats_polling_interval_s", "free_page_reporting", "free_page_hinting"});
  if (!j) return fault(400, j.error().what);
  auto mib = get_uint(*j, "amount_mib");
  auto oom = get_bool(*j, "deflate_on_oom");
  auto interval = get_uint(*j, "stats_polling_interval_s");
  auto reporting = get_bool(*j, "free_page_reporting");
  auto hinting = get_bool(*j, "free_page_hinting");
  for (const Error* e :
       {mib ? nullptr : &mib.error(), oom ? nullptr : &oom.error(), interval ? nullptr : &interval.error(),
        reporting ? nullptr : &reporting.error(), hinting ? nullptr : &hinting.error()})
    if (e) return fault(400, e->what);
  if (!*mib) return fault(400, "amount_mib is required");
  if (!*oom) return fault(400, "deflate_on_oom is required");
  if (**mib >= kMaxMib) return fault(400, "amount_mib is too large");
  if (**mib << 20 > c.config().memory_bytes) return fault(400, "amount_mib is larger than the guest memory");
  if (*interval && **interval > 86400) return fault(400, "stats_polling_interval_s must be at most 86400");
  if (*hinting && **hinting) return fault(400, "free_page_hinting is not supported (use free_page_reporting)");
  BalloonConfig b;
  b.size_bytes = **mib << 20;
  b.deflate_on_oom = **oom;
  b.stats_interval_s = static_cast<uint32_t>(interval->value_or(0));
  b.free_page_reporting = reporting->value_or(false);
  c.config().balloon = b;
  return no_content();
}

HttpResponse patch_balloon(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"amount_mib"});
  if (!j) return fault(400, j.error().what);
  auto mib = get_uint(*j, "amount_mib");
  if (!mib) return fault(400, mib.error().what);
  if (!*mib) return fault(400, "amount_mib is required");
  if (**mib >= kMaxMib) return fault(400, "amount_mib is too large");
  if (!c.config().balloon) return fault(400, "no balloon device is configured");
  if (c.state() == InstanceState::kNotStarted) {
    if (**mib << 20 > c.config().memory_bytes) return fault(400, "amount_mib is larger than the guest memory");
    c.config().balloon->size_bytes = **mib << 20;
    return no_content();
  }
  if (auto ok = c.launcher().set_balloon(**mib << 20); !ok) return fault(400, "balloon: " + ok.error().what);
  return no_content();
}

HttpResponse get_balloon(const Controller& c) {
  if (!c.config().balloon) return fault(400, "no balloon device is configured");
  const BalloonConfig& b = *c.config().balloon;
  uint64_t target = b.size_bytes;
  if (c.state() != InstanceState::kNotStarted) {
    if (auto st = c.launcher().balloon_stats()) target = st->target_bytes;
  }
  return ok_json({{"amount_mib", target >> 20},
                  {"deflate_on_oom", b.deflate_on_oom},
                  {"stats_polling_interval_s", b.stats_interval_s},
                  {"free_page_reporting", b.free_page_reporting}});
}

HttpResponse patch_balloon_statistics(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"stats_polling_interval_s"});
  if (!j) return fault(400, j.error().what);
  auto interval = get_uint(*j, "stats_polling_interval_s");
  if (!interval) return fault(400, interval.error().what);
  if (!*interval) return fault(400, "stats_polling_interval_s is required");
  if (!c.config().balloon) return fault(400, "no balloon device is configured");
  if (**interval > 86400) return fault(400, "stats_polling_interval_s must be at most 86400");
  if (c.state() == InstanceState::kNotStarted) {
    c.config().balloon->stats_interval_s = static_cast<uint32_t>(**interval);
    return no_content();
  }
  if (**interval == c.config().balloon->stats_interval_s) return no_content();
  return fault(400, "changing the statistics interval of a running microVM is not supported yet");
}

HttpResponse get_balloon_statistics(const Controller& c) {
  if (!c.config().balloon) return fault(400, "no balloon device is configured");
  if (c.config().balloon->stats_interval_s == 0) return fault(400, "balloon statistics are not enabled");
  if (c.state() == InstanceState::kNotStarted) return fault(400, "the microVM is not started");
  auto st = c.launcher().balloon_stats();
  if (!st) return fault(400, "balloon: " + st.error().what);
  Json j = {{"target_pages", st->target_bytes >> 12},
            {"actual_pages", st->actual_bytes >> 12},
            {"target_mib", st->target_bytes >> 20},
            {"actual_mib", st->actual_bytes >> 20}};
  auto put = [&j](const char* name, const std::optional<uint64_t>& v) {
    if (v) j[name] = *v;
  };
  put("swap_in", st->swap_in);
  put("swap_out", st->swap_out);
  put("major_faults", st->major_faults);
  put("minor_faults", st->minor_faults);
  put("free_memory", st->free_memory);
  put("total_memory", st->total_memory);
  put("available_memory", st->available_memory);
  put("disk_caches", st->disk_caches);
  put("hugetlb_allocations", st->hugetlb_allocations);
  put("hugetlb_failures", st->hugetlb_failures);
  return ok_json(j);
}

}  // namespace microvm::api
