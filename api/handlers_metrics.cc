// GET|PUT /metrics, GET /events and the FlushMetrics action.
#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {

HttpResponse get_metrics(Controller& c) { return HttpResponse{200, dump_json(c.metrics_now())}; }

// Firecracker's PUT /metrics: before start only, once. The file is opened here, while the
// API thread may still open paths (its sandbox comes with the start).
HttpResponse put_metrics(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"metrics_path"});
  if (!j) return fault(400, j.error().what);
  auto path = get_string(*j, "metrics_path");
  if (!path) return fault(400, path.error().what);
  if (!*path) return fault(400, "metrics_path is required");
  if (c.state() != InstanceState::kNotStarted)
    return fault(400, "the metrics file cannot be set after the microVM started (use microvm run --metrics-path)");
  if (auto ok = c.set_metrics_path(**path); !ok) return fault(400, ok.error().what);
  return no_content();
}

HttpResponse flush_metrics(Controller& c) {
  if (auto ok = c.flush_metrics(); !ok) return fault(400, "FlushMetrics: " + ok.error().what);
  return no_content();
}

HttpResponse get_events(Controller& c) {
  if (!c.event_hub()) return fault(400, "events are not available on this server");
  HttpResponse r;
  r.event_stream = true;
  return r;
}

}  // namespace microvm::api
