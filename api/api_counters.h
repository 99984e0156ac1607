#pragma once
// The API server's own metrics (Firecracker's "api_server" group): requests by method and
// outcome, and what the transport refused. Updated and read on the API thread only, but
// kept atomic like every other counter so any reader may take a snapshot.
#include <atomic>
#include <cstdint>

namespace microvm::api {

using ApiCounter = std::atomic<uint64_t>;
inline void bump(ApiCounter& c) { c.fetch_add(1, std::memory_order_relaxed); }
inline uint64_t value(const ApiCounter& c) { return c.load(std::memory_order_relaxed); }

struct ApiCounters {
  ApiCounter get_requests{0}, put_requests{0}, patch_requests{0}, other_requests{0};
  ApiCounter responses_2xx{0}, responses_4xx{0}, responses_5xx{0};
  ApiCounter connections_accepted{0};
  ApiCounter connections_refused{0};    // over the connection limit
  ApiCounter connections_timed_out{0};  // idle for longer than the idle timeout
  ApiCounter protocol_errors{0};        // malformed HTTP or a size limit (the connection is closed)
  ApiCounter slow_readers_dropped{0};   // too many unsent bytes (answers or events) for one client
  ApiCounter event_subscribers{0};      // GET /events streams opened
  ApiCounter events_published{0};
  ApiCounter metrics_flushes{0};  // lines written to the metrics file
  ApiCounter metrics_flush_failures{0};

  template <class F>
  void visit(F&& f) const {
    f("get_requests", value(get_requests));
    f("put_requests", value(put_requests));
    f("patch_requests", value(patch_requests));
    f("other_requests", value(other_requests));
    f("responses_2xx", value(responses_2xx));
    f("responses_4xx", value(responses_4xx));
    f("responses_5xx", value(responses_5xx));
    f("connections_accepted", value(connections_accepted));
    f("connections_refused", value(connections_refused));
    f("connections_timed_out", value(connections_timed_out));
    f("protocol_errors", value(protocol_errors));
    f("slow_readers_dropped", value(slow_readers_dropped));
    f("event_subscribers", value(event_subscribers));
    f("events_published", value(events_published));
    f("metrics_flushes", value(metrics_flushes));
    f("metrics_flush_failures", value(metrics_flush_failures));
  }
};

}  // namespace microvm::api
