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
  if (a == "SendCtrlAltDel") {
    // Firecracker sends Ctrl+Alt+Del through an i8042; microvm has no keyboard controller and
    // presses the ACPI power button instead: the same "ask the guest to shut down".
    if (c.state() == InstanceState::kNotStarted) return fault(400, "SendCtrlAltDel: the microVM is not started");
    if (auto ok = c.launcher().request_shutdown(); !ok) return fault(400, "SendCtrlAltDel: " + ok.error().what);
    return no_content();
  }
  if (a == "FlushMetrics") return flush_metrics(c);
  return fault(400, "unknown action_type '" + a + "'");
}

// {"state": "Paused"|"Resumed"}: Vm::pause() / Vm::resume().
HttpResponse patch_vm_state(Controller& c, const std::string& body) {
  auto j = parse_object(body, {"state"});
  if (!j) return fault(400, j.error().what);
  auto state = get_string(*j, "state");
  if (!state) return fault(400, state.error().what);
  if (!*state) return fault(400, "state is required (\"Paused\" or \"Resumed\")");
  if (c.state() == InstanceState::kNotStarted) return fault(400, "the microVM is not started");
  if (**state == "Paused") {
    if (c.state() == InstanceState::kPaused) return fault(400, "the microVM is already paused");
    if (auto ok = c.launcher().pause(); !ok) return fault(400, "pause: " + ok.error().what);
    c.mark_paused();
    return no_content();
  }
  if (**state == "Resumed") {
    if (c.state() != InstanceState::kPaused) return fault(400, "the microVM is not paused");
    if (auto ok = c.launcher().resume(); !ok) return fault(400, "resume: " + ok.error().what);
    c.mark_running();
    return no_content();
  }
  return fault(400, "state must be \"Paused\" or \"Resumed\", not '" + **state + "'");
}

}  // namespace microvm::api
