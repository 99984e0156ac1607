// PUT /actions and PATCH /vm.
#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {

HttpResponse put_actions(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"action_type"});
  if (!j) return fault(400, j.error().what);
  auto action = get_string(*j, "action_type");
  if (!action) return fault(400, action.error().what);
  if (!*action) return fault(400, "action_type is required");
  const std::string& a = **action;
  if (a == "InstanceStart") {
    if (auto ok = c.start(); !ok) return fault(400, ok.error().what);
    return no_content();
  }
  // microvm extension (the "x-microvm-" prefix cannot collide with Firecracker's names):
  // ends the microVM as `C-a x` does (exit code 5).
  if (a == "x-microvm-Stop") {
    c.launcher().stop();
    return no_content();
  }
  if (a == "SendCtrlAltDel") return fault(400, "SendCtrlAltDel is not supported yet");
  if (a == "FlushMetrics") return fault(400, "FlushMetrics is not supported yet (no metrics endpoint)");
  return fault(400, "unknown action_type '" + a + "'");
}

// TODO(vm-control): wire to Vm::pause()/Vm::resume() once they are in the library:
// {"state": "Paused"|"Resumed"}, 400 before start. This is the only place to change.
HttpResponse patch_vm_state(Controller&, const std::string& body) {
  auto j = parse_object(body, {"state"});
  if (!j) return fault(400, j.error().what);
  return fault(400, "pausing and resuming the microVM is not supported yet");
}

}  // namespace microvm::api
