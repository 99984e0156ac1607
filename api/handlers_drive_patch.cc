// PATCH /drives/ID: Firecracker's media change. The body names the drive and its new backing
// file; the running microVM opens it (same format and read-only rules as at start, image lock
// taken) and swaps it in. Every refusal leaves the old file in place and says why.
#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {

HttpResponse patch_drive(Controller& c, const std::string& id, const std::string& body) {
  auto j = parse_object(body, {"drive_id", "path_on_host", "rate_limiter", "x-microvm-format"});
  if (!j) return fault(400, j.error().what);
  auto body_id = get_string(*j, "drive_id");
  auto path = get_string(*j, "path_on_host");
  auto format = get_string(*j, "x-microvm-format");
  for (const Error* e : {body_id ? nullptr : &body_id.error(), path ? nullptr : &path.error(),
                         format ? nullptr : &format.error()})
    if (e) return fault(400, e->what);
  if (!*body_id || **body_id != id)
    return fault(400, "drive_id in the body must match the id in the path ('" + id + "')");
  if (c.state() == InstanceState::kNotStarted)
    return fault(400, "PATCH /drives/" + id + " changes a running microVM's drive; before InstanceStart use PUT /drives/" + id);
  // Firecracker can replace a drive's token buckets at run time; ours are fixed at start.
  if (j->contains("rate_limiter") && !(*j)["rate_limiter"].is_null())
    return fault(400, "drive field 'rate_limiter' cannot be changed after start (set it with --disk ...,bps=,iops=)");
  if (!*path) return fault(400, "path_on_host is required");
  if (**path == "") return fault(400, "drive '" + id + "' path_on_host: the path is empty");
  if (*format && **format != "raw" && **format != "qcow2")
    return fault(400, "x-microvm-format must be \"raw\" or \"qcow2\"");
  // No stat() here: the API thread's seccomp role opens and inspects no path. The launcher's
  // file thread opens the image, and its error names the path.
  if (auto ok = c.launcher().swap_disk(id, **path, format->value_or("")); !ok)
    return fault(400, "drive swap: " + ok.error().what);
  for (auto& d : c.drives())
    if (d.id == id) {
      d.disk.path = **path;
      if (*format) d.disk.format = **format;
    }
  return no_content();
}

}  // namespace microvm::api
