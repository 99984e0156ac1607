#include "api/router.h"

#include <exception>
#include <string_view>

#include "api/handlers.h"

namespace microvm::api {
namespace {

HttpResponse method_not_allowed(const HttpRequest& r, const char* allowed) {
  return fault(405, "method " + r.method + " is not allowed on " + r.path + " (allowed: " + allowed + ")");
}

// Firecracker endpoints microvm does not serve: a 400 that says why, not a bare 404.
const char* unsupported_reason(std::string_view p) {
  struct Gap {
    std::string_view path;
    bool prefix;
    const char* why;
  };
  static constexpr Gap gaps[] = {
      {"/cpu-config", false,
       "/cpu-config is not supported: microvm has no CPU templates (the host's CPUID is passed on)"},
      {"/mmds", true,
       "MMDS (/mmds) is not supported: hand the guest its data on the kernel command line, a drive or vsock"},
      {"/serial", false, "/serial is not supported: the serial console goes to microvm's stdout"},
      {"/hotplug/memory", false, "/hotplug/memory is not supported: microvm has no virtio-mem (use the balloon)"},
      {"/balloon/hinting", true, "free page hinting is not supported (use free_page_reporting)"},
      {"/pmem/", true, "/pmem is not supported through the API yet: use microvm run --pmem PATH"},
  };
  for (const auto& g : gaps)
    if (g.prefix ? p.starts_with(g.path) : p == g.path) return g.why;
  return nullptr;
}

// "/drives/ID" -> "ID" when `path` is `prefix` + one non-empty segment.
bool one_segment_after(std::string_view path, std::string_view prefix, std::string& id) {
  if (!path.starts_with(prefix) || path.size() == prefix.size()) return false;
  std::string_view rest = path.substr(prefix.size());
  if (rest.find('/') != std::string_view::npos) return false;
  id = std::string(rest);
  return true;
}

HttpResponse dispatch(Controller& c, const HttpRequest& r) {
  const std::string& m = r.method;
  std::string_view p = r.path;
  // Trailing slashes are tolerated ("/machine-config/" is "/machine-config").
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  std::string id;

  if (p == "/") return m == "GET" ? get_instance_info(c) : method_not_allowed(r, "GET");
  if (p == "/version") return m == "GET" ? get_version(c) : method_not_allowed(r, "GET");
  if (p == "/vm/config") return m == "GET" ? get_vm_config(c) : method_not_allowed(r, "GET");
  if (p == "/machine-config") {
    if (m == "GET") return get_machine_config(c);
    if (m == "PUT") return put_machine_config(c, r.body, false);
    if (m == "PATCH") return put_machine_config(c, r.body, true);
    return method_not_allowed(r, "GET, PUT, PATCH");
  }
  if (p == "/boot-source") return m == "PUT" ? put_boot_source(c, r.body) : method_not_allowed(r, "PUT");
  if (one_segment_after(p, "/drives/", id)) {
    if (m == "PUT") return put_drive(c, id, r.body);
    if (m == "PATCH") return patch_drive(c, id, r.body);
    return method_not_allowed(r, "PUT, PATCH");
  }
  if (one_segment_after(p, "/network-interfaces/", id)) {
    if (m == "PUT") return put_network_interface(c, id, r.body);
    if (m == "PATCH") return patch_network_interface(c, id, r.body);
    return method_not_allowed(r, "PUT, PATCH");
  }
  if (p == "/actions") return m == "PUT" ? put_actions(c, r.body) : method_not_allowed(r, "PUT");
  if (p == "/vm") return m == "PATCH" ? patch_vm_state(c, r.body) : method_not_allowed(r, "PATCH");
  if (p == "/snapshot/create") return m == "PUT" ? put_snapshot_create(c, r.body) : method_not_allowed(r, "PUT");
  if (p == "/snapshot/load") return m == "PUT" ? put_snapshot_load(c, r.body) : method_not_allowed(r, "PUT");
  if (p == "/balloon") {
    if (m == "GET") return get_balloon(c);
    if (m == "PUT") return put_balloon(c, r.body);
    if (m == "PATCH") return patch_balloon(c, r.body);
    return method_not_allowed(r, "GET, PUT, PATCH");
  }
  if (p == "/balloon/statistics") {
    if (m == "GET") return get_balloon_statistics(c);
    if (m == "PATCH") return patch_balloon_statistics(c, r.body);
    return method_not_allowed(r, "GET, PATCH");
  }
  if (p == "/vsock") return m == "PUT" ? put_vsock(c, r.body) : method_not_allowed(r, "PUT");
  if (p == "/logger") return m == "PUT" ? put_logger(c, r.body) : method_not_allowed(r, "PUT");
  if (p == "/metrics") {
    if (m == "GET") return get_metrics(c);
    if (m == "PUT") return put_metrics(c, r.body);
    return method_not_allowed(r, "GET, PUT");
  }
  // The name issue #14 first used for the JSON snapshot; same document as GET /metrics.
  if (p == "/metrics/now") return m == "GET" ? get_metrics(c) : method_not_allowed(r, "GET");
  if (p == "/events") return m == "GET" ? get_events(c) : method_not_allowed(r, "GET");
  if (p == "/entropy") return m == "PUT" ? put_entropy(c, r.body) : method_not_allowed(r, "PUT");
  if (const char* why = unsupported_reason(p)) return fault(400, why);
  return fault(404, "no such resource: " + std::string(p));
}

}  // namespace

HttpResponse route(Controller& controller, const HttpRequest& request) {
  ApiCounters& n = controller.counters();
  const std::string& m = request.method;
  bump(m == "GET" ? n.get_requests : m == "PUT" ? n.put_requests : m == "PATCH" ? n.patch_requests : n.other_requests);
  HttpResponse response;
  try {
    response = dispatch(controller, request);
  } catch (const std::exception& e) {
    // A bug (handlers report errors as values); the VM and the server carry on.
    response = fault(500, std::string("internal error: ") + e.what());
  }
  bump(response.status < 300 ? n.responses_2xx : response.status < 500 ? n.responses_4xx : n.responses_5xx);
  return response;
}

}  // namespace microvm::api
