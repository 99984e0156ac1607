#pragma once
// `microvm run --api-sock PATH`: the REST API server (api/) next to the Vm. With --kernel
// the Vm starts at once; without it this thread waits until a client sends
// PUT /actions InstanceStart, creates the Vm from the configuration the API collected,
// and runs it. The Vm is always created and run on this (the main) thread.
#include <chrono>
#include <optional>

#include "cli/run_command.h"
#include "vmm/sandbox/jail.h"

namespace microvm {

// With `jail` (this process is the launcher's jailed child, its namespaces entered): the
// API socket is bound now, on the host's file system, so clients outside reach it; the
// jail closes (jail_lock_down) once the Vm exists, before it runs. Configuration requests
// before InstanceStart are served as without the jail; PUT /snapshot/create, which names
// host files after that, writes only into opts.snapshot_dir (bound into the jail), and is
// refused without one. Snapshot paths are confined to opts.snapshot_dir whenever it is set.
// The launcher removes the socket file at exit.
int run_with_api(RunOptions& opts, std::chrono::steady_clock::time_point start, std::optional<JailOptions> jail);

}  // namespace microvm
