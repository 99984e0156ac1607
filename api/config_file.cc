#include "api/config_file.h"

#include "api/handlers.h"
#include "api/json_body.h"
#include "base/result.h"

namespace microvm::api {
namespace {

Result<void> accept(const std::string& where, const HttpResponse& r) {
  if (r.status < 300) return {};
  auto j = Json::parse(r.body, nullptr, false);
  std::string why = j.is_object() && j.contains("fault_message") && j["fault_message"].is_string()
                        ? j["fault_message"].get<std::string>()
                        : "refused";
  return fail(EINVAL, "config file: " + where + ": " + why);
}

Result<const Json*> array_section(const Json& doc, const char* name) {
  auto it = doc.find(name);
  if (it == doc.end() || it->is_null()) return nullptr;
  if (!it->is_array()) return fail(EINVAL, std::string("config file: '") + name + "' must be an array");
  return &*it;
}

// The id a PUT /drives/{id} would carry in its path, from the body itself.
std::string id_field(const Json& entry, const char* key) {
  auto it = entry.is_object() ? entry.find(key) : entry.end();
  return it != entry.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

Result<void> apply_config_document(Controller& c, const std::string& text) {
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded()) return fail(EINVAL, "config file: not valid JSON");
  if (auto ok = check_object(doc, {"boot-source", "drives", "machine-config", "network-interfaces", "logger", "metrics",
                                   "vsock", "entropy"});
      !ok)
    return fail(EINVAL, "config file: " + ok.error().what);
  if (doc.contains("logger")) TRY(accept("logger", put_logger(c, dump_json(doc["logger"]))));
  if (doc.contains("metrics")) TRY(accept("metrics", put_metrics(c, dump_json(doc["metrics"]))));
  if (doc.contains("machine-config"))
    TRY(accept("machine-config", put_machine_config(c, dump_json(doc["machine-config"]), false)));
  if (doc.contains("vsock")) TRY(accept("vsock", put_vsock(c, dump_json(doc["vsock"]))));
  if (doc.contains("entropy")) TRY(accept("entropy", put_entropy(c, dump_json(doc["entropy"]))));
  if (!doc.contains("boot-source")) return fail(EINVAL, "config file: 'boot-source' is required");
  TRY(accept("boot-source", put_boot_source(c, dump_json(doc["boot-source"]))));
  if (const Json* drives = TRY(array_section(doc, "drives")))
    for (size_t i = 0; i < drives->size(); ++i) {
      const Json& d = (*drives)[i];
      TRY(accept("drives[" + std::to_string(i) + "]", put_drive(c, id_field(d, "drive_id"), dump_json(d))));
    }
  if (const Json* nets = TRY(array_section(doc, "network-interfaces")))
    for (size_t i = 0; i < nets->size(); ++i) {
      const Json& n = (*nets)[i];
      TRY(accept("network-interfaces[" + std::to_string(i) + "]",
                 put_network_interface(c, id_field(n, "iface_id"), dump_json(n))));
    }
  return {};
}

}  // namespace microvm::api
