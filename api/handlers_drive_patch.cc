// PATCH /network-interfaces/ID: new rate limits. PATCH /drives/ID: Firecracker's media change
// and/or new rate limits. The body names the drive and its new backing
// file; the running microVM opens it (same format and read-only rules as at start, image lock
// taken) and swaps it in. Every refusal leaves the old file in place and says why.
#include "api/handlers.h"
#include "api/json_body.h"
#include "api/rate_limiter_json.h"

namespace microvm::api {

HttpResponse patch_network_interface(Controller& c, const std::string& id, const std::string& body) {
  auto j = parse_object(body, {"iface_id", "rx_rate_limiter", "tx_rate_limiter"});
  if (!j) return fault(400, j.error().what);
  auto body_id = get_string(*j, "iface_id");
  if (!body_id) return fault(400, body_id.error().what);
  if (!*body_id || **body_id != id)
    return fault(400, "iface_id in the body must match the id in the path ('" + id + "')");
  if (c.state() == InstanceState::kNotStarted)
    return fault(400, "PATCH /network-interfaces/" + id +
                          " changes a running microVM's interface; before InstanceStart use PUT /network-interfaces/" +
                          id);
  RateLimitUpdate rx, tx;
  for (auto [key, out] : {std::pair{"rx_rate_limiter", &rx}, std::pair{"tx_rate_limiter", &tx}}) {
    if (!j->contains(key) || (*j)[key].is_null()) continue;
    auto parsed = parse_rate_limiter((*j)[key], key);
    if (!parsed) return fault(400, parsed.error().what);
    *out = *parsed;
  }
  if (rx.empty() && tx.empty()) return fault(400, "nothing to change: give rx_rate_limiter or tx_rate_limiter");
  if (auto ok = c.launcher().set_net_rate_limit(id, rx, tx); !ok) return fault(400, "rate limit: " + ok.error().what);
  for (auto& n : c.nets())
    if (n.id == id) {
      if (!rx.empty()) n.rx_rate_limiter = merge_rate_limiter(n.rx_rate_limiter, (*j)["rx_rate_limiter"]);
      if (!tx.empty()) n.tx_rate_limiter = merge_rate_limiter(n.tx_rate_limiter, (*j)["tx_rate_limiter"]);
    }
  return no_content();
}

HttpResponse patch_drive(Controller& c, const std::string& id, const std::string& body) {
  auto j = parse_object(body, {"drive_id", "path_on_host", "rate_limiter", "x-microvm-format"});
  if (!j) return fault(400, j.error().what);
  auto body_id = get_string(*j, "drive_id");
  auto path = get_string(*j, "path_on_host");
  auto format = get_string(*j, "x-microvm-format");
  for (const Error* e :
       {body_id ? nullptr : &body_id.error(), path ? nullptr : &path.error(), format ? nullptr : &format.error()})
    if (e) return fault(400, e->what);
  if (!*body_id || **body_id != id)
    return fault(400, "drive_id in the body must match the id in the path ('" + id + "')");
  if (c.state() == InstanceState::kNotStarted)
    return fault(
        400, "PATCH /drives/" + id + " changes a running microVM's drive; before InstanceStart use PUT /drives/" + id);
  RateLimitUpdate limits;
  if (j->contains("rate_limiter") && !(*j)["rate_limiter"].is_null()) {
    auto parsed = parse_rate_limiter((*j)["rate_limiter"], "rate_limiter");
    if (!parsed) return fault(400, parsed.error().what);
    limits = *parsed;
  }
  if (!*path && limits.empty()) return fault(400, "nothing to change: give path_on_host or rate_limiter");
  if (*path && **path == "") return fault(400, "drive '" + id + "' path_on_host: the path is empty");
  if (*format && !*path) return fault(400, "x-microvm-format needs path_on_host");
  std::optional<DiskFormat> new_format;
  if (*format) {
    new_format = disk_format_from_string(**format);
    if (!new_format) return fault(400, "x-microvm-format must be \"raw\" or \"qcow2\"");
  }
  auto remember_limits = [&] {
    for (auto& d : c.drives())
      if (d.id == id) d.rate_limiter = merge_rate_limiter(d.rate_limiter, (*j)["rate_limiter"]);
  };
  if (!*path) {
    if (auto ok = c.launcher().set_disk_rate_limit(id, limits); !ok)
      return fault(400, "rate limit: " + ok.error().what);
    remember_limits();
    return no_content();
  }
  // No stat() here: the API thread's seccomp role opens and inspects no path. The launcher's
  // file thread opens the image, and its error names the path.
  if (auto ok = c.launcher().swap_disk(id, **path, new_format); !ok)
    return fault(400, "drive swap: " + ok.error().what);
  // After the swap (which cannot be undone), so a refused limit says so without hiding it.
  if (!limits.empty())
    if (auto ok = c.launcher().set_disk_rate_limit(id, limits); !ok)
      return fault(400, "the drive was swapped, but its rate limit was not changed: " + ok.error().what);
  if (!limits.empty()) remember_limits();
  for (auto& d : c.drives())
    if (d.id == id) {
      d.disk.path = **path;
      if (new_format) d.disk.format = *new_format;
    }
  return no_content();
}

}  // namespace microvm::api
