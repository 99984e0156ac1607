#pragma once
// A snapshot's state file read and checked completely before anything is created, and the
// configuration a machine restored from it runs with. Shared by Vm::restore() (which does
// both once per restore) and a ClonePool (which reads the snapshot once for all its clones).
#include <string>
#include <vector>

#include "base/result.h"
#include "microvm/vm.h"
#include "virtio/transport/device_snapshot.h"
#include "vmm/config_check.h"
#include "vmm/snapshot/kvm_state.h"
#include "vmm/snapshot/machine_state.h"

namespace microvm {

// Everything a restore needs, decoded and cross-checked before KVM is touched.
struct DecodedSnapshot {
  snapshot::MachineState machine;
  std::vector<snapshot::VcpuState> vcpus;
  snapshot::VmKvmState vm;
  std::vector<DeviceState> devices;  // in the machine's device order
  std::vector<std::byte> uart;       // platform section 0; empty in snapshots without one
};

// Reads and decodes the state file at `path` (untrusted: every length, count and layout is
// checked, and the CPU it was taken on must be compatible with this host's).
[[nodiscard]] Result<DecodedSnapshot> read_snapshot_state(const std::string& path);

// The machine a restore builds: its shape and devices from the snapshot, how this process
// runs it (console, logging, sandbox) and replaced host sides (disks, serial-port sockets,
// vsock socket) from `options`; refused when clones would share something writable. Checked
// as a command line is (against `host`). `state_path` names the snapshot in messages.
[[nodiscard]] Result<VmConfig> restored_config(const DecodedSnapshot& snapshot, const RestoreOptions& options,
                                               const std::string& state_path, const HostLimits& host);

}  // namespace microvm
