// Read-only endpoints: they answer in every state.
#include "api/handlers.h"
#include "api/json_body.h"

namespace microvm::api {
namespace {

const char* state_name(InstanceState s) {
  switch (s) {
    case InstanceState::kNotStarted:
      return "Not started";
    case InstanceState::kRunning:
      return "Running";
    case InstanceState::kPaused:
      return "Paused";
  }
  return "Not started";
}

HttpResponse ok_json(const Json& j) { return HttpResponse{200, dump_json(j)}; }

Json machine_config_json(const Controller& c) {
  return {{"vcpu_count", c.config().cpus},
          {"mem_size_mib", c.config().memory_bytes >> 20},
          {"smt", c.smt},
          {"track_dirty_pages", c.track_dirty_pages},
          {"huge_pages", c.config().hugepages ? "2M" : "None"}};
}

}  // namespace

HttpResponse no_content() { return HttpResponse{204, ""}; }

HttpResponse get_instance_info(const Controller& c) {
  return ok_json({{"id", c.info().id},
                  {"state", state_name(c.state())},
                  {"vmm_version", c.info().vmm_version},
                  {"app_name", "microvm"}});
}

HttpResponse get_version(const Controller& c) {
  // Firecracker's field name, so its clients can read it.
  return ok_json({{"firecracker_version", c.info().vmm_version}});
}

HttpResponse get_machine_config(const Controller& c) { return ok_json(machine_config_json(c)); }

HttpResponse get_vm_config(const Controller& c) {
  Json drives = Json::array();
  for (const auto& d : c.drives()) {
    Json e = {{"drive_id", d.id},
              {"path_on_host", d.disk.path},
              {"is_root_device", d.is_root},
              {"is_read_only", d.disk.read_only},
              {"x-microvm-format", to_string(d.disk.format)}};
    if (!d.rate_limiter.is_null()) e["rate_limiter"] = d.rate_limiter;
    drives.push_back(e);
  }
  Json nets = Json::array();
  for (const auto& n : c.nets()) {
    Json e = {{"iface_id", n.id}, {"host_dev_name", n.net.tap}};
    if (!n.net.mac.empty()) e["guest_mac"] = n.net.mac;
    if (!n.rx_rate_limiter.is_null()) e["rx_rate_limiter"] = n.rx_rate_limiter;
    if (!n.tx_rate_limiter.is_null()) e["tx_rate_limiter"] = n.tx_rate_limiter;
    nets.push_back(e);
  }
  Json j = {{"machine-config", machine_config_json(c)}, {"drives", drives}, {"network-interfaces", nets}};
  if (c.boot_source_set()) {
    Json b = {{"kernel_image_path", c.config().kernel_path}, {"boot_args", c.config().cmdline}};
    if (!c.config().initrd_path.empty()) b["initrd_path"] = c.config().initrd_path;
    j["boot-source"] = b;
  }
  if (const auto& v = c.config().vsock) j["vsock"] = {{"guest_cid", v->guest_cid}, {"uds_path", v->socket_path}};
  return ok_json(j);
}

}  // namespace microvm::api
