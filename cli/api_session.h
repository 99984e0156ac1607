#pragma once
// `microvm run --api-sock PATH`: the REST API server (api/) next to the Vm. With --kernel
// the Vm starts at once; without it this thread waits until a client sends
// PUT /actions InstanceStart, creates the Vm from the configuration the API collected,
// and runs it. The Vm is always created and run on this (the main) thread.
#include <chrono>

#include "cli/run_command.h"

namespace microvm {

int run_with_api(RunOptions& opts, std::chrono::steady_clock::time_point start);

}  // namespace microvm
