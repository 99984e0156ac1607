// PUT /snapshot/create and PUT /snapshot/load, with Firecracker's bodies:
//   create: {"snapshot_type": "Full", "snapshot_path": S, "mem_file_path": M}
//   load:   {"snapshot_path": S, "mem_backend": {"backend_type": "File", "backend_path": M},
//            "resume_vm": bool}  (or the older "mem_file_path": M instead of mem_backend)
// As in Firecracker, create needs a paused microVM and load a microVM not yet started.
#include "api/handlers.h"
#include "api/json_body.h"
#include "base/result.h"

namespace microvm::api {
namespace {

Result<std::string> required_path(const Json& j, const char* key) {
  auto v = TRY(get_string(j, key));
  if (!v || v->empty()) return fail(EINVAL, std::string(key) + " is required");
  return *v;
}

}  // namespace

HttpResponse put_snapshot_create(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"snapshot_type", "snapshot_path", "mem_file_path", "version"});
  if (!j) return fault(400, j.error().what);
  auto type = get_string(*j, "snapshot_type");
  if (!type) return fault(400, type.error().what);
  if (*type && **type != "Full") {
    if (**type == "Diff") return fault(400, "snapshot_type Diff is not supported (microvm writes Full snapshots)");
    return fault(400, "snapshot_type must be \"Full\" or \"Diff\", not '" + **type + "'");
  }
  if (auto v = get_string(*j, "version"); !v) return fault(400, v.error().what);
  auto state = required_path(*j, "snapshot_path");
  if (!state) return fault(400, state.error().what);
  auto memory = required_path(*j, "mem_file_path");
  if (!memory) return fault(400, memory.error().what);
  if (*state == *memory) return fault(400, "snapshot_path and mem_file_path must be different files");
  if (c.state() == InstanceState::kNotStarted) return fault(400, "the microVM is not started");
  if (c.state() != InstanceState::kPaused)
    return fault(400, "the microVM must be paused before a snapshot (PATCH /vm {\"state\": \"Paused\"})");
  if (auto ok = c.launcher().save_snapshot(*state, *memory); !ok) return fault(400, "snapshot: " + ok.error().what);
  return no_content();
}

HttpResponse put_snapshot_load(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"snapshot_path", "mem_file_path", "mem_backend", "resume_vm", "enable_diff_snapshots",
                               "track_dirty_pages"});
  if (!j) return fault(400, j.error().what);
  auto state = required_path(*j, "snapshot_path");
  if (!state) return fault(400, state.error().what);
  for (const char* flag : {"enable_diff_snapshots", "track_dirty_pages"}) {
    auto v = get_bool(*j, flag);
    if (!v) return fault(400, v.error().what);
    if (*v && **v) return fault(400, std::string(flag) + " is not supported");
  }
  auto resume = get_bool(*j, "resume_vm");
  if (!resume) return fault(400, resume.error().what);
  auto old_path = get_string(*j, "mem_file_path");
  if (!old_path) return fault(400, old_path.error().what);
  std::string memory;
  if (j->contains("mem_backend") && !(*j)["mem_backend"].is_null()) {
    if (*old_path) return fault(400, "give either mem_backend or mem_file_path, not both");
    auto backend = check_object((*j)["mem_backend"], {"backend_type", "backend_path"});
    if (!backend) return fault(400, "mem_backend: " + backend.error().what);
    auto type = get_string(*backend, "backend_type");
    if (!type) return fault(400, "mem_backend: " + type.error().what);
    if (!*type) return fault(400, "mem_backend: backend_type is required");
    if (**type == "Uffd") return fault(400, "mem_backend: backend_type Uffd is not supported (use File)");
    if (**type != "File") return fault(400, "mem_backend: backend_type must be \"File\" or \"Uffd\"");
    auto path = required_path(*backend, "backend_path");
    if (!path) return fault(400, "mem_backend: " + path.error().what);
    memory = *path;
  } else if (*old_path && !(*old_path)->empty()) {
    memory = **old_path;
  } else {
    return fault(400, "mem_backend (or mem_file_path) is required");
  }
  if (c.state() != InstanceState::kNotStarted)
    return fault(400, "a snapshot can only be loaded before the microVM starts");
  RestoreOptions o;
  o.memory_path = memory;
  o.start_paused = !(*resume && **resume);
  if (auto ok = c.load_snapshot(*state, o); !ok) return fault(400, "snapshot load: " + ok.error().what);
  return no_content();
}

}  // namespace microvm::api
