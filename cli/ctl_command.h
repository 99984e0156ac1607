#pragma once
// `microvm ctl --api-sock PATH info|stop [--json]`: a small client of the REST API (api/).
namespace microvm {

int ctl_command(int argc, char** argv);

}  // namespace microvm
