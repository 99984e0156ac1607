// PUT /vsock before start (Firecracker's body: guest_cid, uds_path, and the deprecated
// vsock_id, accepted and ignored). One device per VM: a second PUT replaces the first.
#include <sys/un.h>

#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {
namespace {

// CIDs 0-2 are the hypervisor, reserved and the host; 2^32-1 is VMADDR_CID_ANY.
constexpr uint64_t kMinGuestCid = 3;
constexpr uint64_t kMaxGuestCid = 0xfffffffeull;
// Guest connections to port P go to "<uds_path>_P": the longest port must still fit in
// sun_path (with its NUL), or they could never be made.
constexpr size_t kMaxUdsPath = sizeof(sockaddr_un{}.sun_path) - 1 - sizeof("_4294967295") + 1;

}  // namespace

HttpResponse put_vsock(Controller& c, const std::string& body) {
  if (c.state() != InstanceState::kNotStarted)
    return fault(400, "cannot change the vsock device after the microVM has started");
  auto j = parse_object(body, {"guest_cid", "uds_path", "vsock_id"});
  if (!j) return fault(400, j.error().what);
  auto cid = get_uint(*j, "guest_cid");
  auto path = get_string(*j, "uds_path");
  auto id = get_string(*j, "vsock_id");
  for (const Error* e : {cid ? nullptr : &cid.error(), path ? nullptr : &path.error(), id ? nullptr : &id.error()})
    if (e) return fault(400, e->what);
  if (!*cid) return fault(400, "guest_cid is required");
  if (!*path) return fault(400, "uds_path is required");
  if (**cid < kMinGuestCid || **cid > kMaxGuestCid) return fault(400, "guest_cid must be between 3 and 4294967294");
  if ((*path)->empty() || (*path)->size() > kMaxUdsPath)
    return fault(400,
                 "uds_path must be 1 to " + std::to_string(kMaxUdsPath) + " bytes (guest ports are appended to it)");
  if ((*path)->find('\0') != std::string::npos) return fault(400, "uds_path must not contain a NUL byte");
  c.config().vsock = VsockConfig{**cid, **path};
  return no_content();
}

}  // namespace microvm::api
