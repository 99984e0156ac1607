#pragma once
// Firecracker's JSON configuration file (`--config-file`): the same sections the API
// configures ("boot-source", "drives", "machine-config", "network-interfaces", "logger"),
// applied through the same handlers, so a file and a sequence of PUTs mean the same.
#include <string>

#include "api/controller.h"
#include "microvm/result.h"

namespace microvm::api {

// Applies every section of `text` to `controller` (not started). The first refused section
// is the error, named: "config file: drives[1]: unknown field 'x'".
[[nodiscard]] Result<void> apply_config_document(Controller& controller, const std::string& text);

}  // namespace microvm::api
