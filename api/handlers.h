#pragma once
// One function per endpoint. Each takes the parsed request and the controller and returns
// the HTTP response; none throws, none touches a socket.
#include <string>

#include "api/controller.h"
#include "api/http_message.h"

namespace microvm::api {

// GET /, GET /version, GET /vm/config, GET /machine-config (handlers_info.cc)
HttpResponse get_instance_info(const Controller& c);
HttpResponse get_version(const Controller& c);
HttpResponse get_vm_config(const Controller& c);
HttpResponse get_machine_config(const Controller& c);

// Configuration before start (handlers_config.cc).
HttpResponse put_machine_config(Controller& c, const std::string& body, bool patch);
HttpResponse put_boot_source(Controller& c, const std::string& body);
HttpResponse put_drive(Controller& c, const std::string& id, const std::string& body);
// PATCH /drives/ID on a running microVM: media change (handlers_drive_patch.cc).
HttpResponse patch_drive(Controller& c, const std::string& id, const std::string& body);
// PATCH /network-interfaces/ID: rx/tx rate limits of a running microVM (handlers_drive_patch.cc).
HttpResponse patch_network_interface(Controller& c, const std::string& id, const std::string& body);
HttpResponse put_network_interface(Controller& c, const std::string& id, const std::string& body);
HttpResponse put_logger(Controller& c, const std::string& body);
// PUT /entropy: virtio-rng and its rate limiter.
HttpResponse put_entropy(Controller& c, const std::string& body);
// PUT /vsock (handlers_vsock.cc).
HttpResponse put_vsock(Controller& c, const std::string& body);

// Metrics and events (handlers_metrics.cc).
HttpResponse get_metrics(Controller& c);
HttpResponse put_metrics(Controller& c, const std::string& body);
HttpResponse flush_metrics(Controller& c);
HttpResponse get_events(Controller& c);

// PUT /actions and PATCH /vm (handlers_actions.cc).
HttpResponse put_actions(Controller& c, const std::string& body);
HttpResponse patch_vm_state(Controller& c, const std::string& body);

// PUT /snapshot/create and PUT /snapshot/load (handlers_snapshot.cc).
HttpResponse put_snapshot_create(Controller& c, const std::string& body);
HttpResponse put_snapshot_load(Controller& c, const std::string& body);
// /balloon and /balloon/statistics (handlers_balloon.cc).
HttpResponse put_balloon(Controller& c, const std::string& body);
HttpResponse patch_balloon(Controller& c, const std::string& body);
HttpResponse get_balloon(const Controller& c);
HttpResponse patch_balloon_statistics(Controller& c, const std::string& body);
HttpResponse get_balloon_statistics(const Controller& c);

HttpResponse no_content();

}  // namespace microvm::api
