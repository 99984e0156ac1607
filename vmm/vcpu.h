#pragma once
// One vCPU thread: KVM_RUN in a loop, register-level port/MMIO exits dispatched to the buses.
// The data path of devices never runs here (ioeventfd sends doorbells to the event loop).
#include <pthread.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "base/result.h"
#include "vmm/io_bus.h"
#include "vmm/kvm.h"

namespace microvm {

enum class VcpuStop { kPowerOff, kReboot, kCrash };

class Vcpu {
 public:
  // `on_stop` is called once, from this vCPU's thread, when the guest stops the machine or
  // crashes; `on_first_run` when this vCPU first enters the guest. `enter_sandbox`, when
  // set, runs first on the new thread (it installs the thread's seccomp filter); if it fails
  // the vCPU never runs and `on_failure` gets the error.
  struct Hooks {
    std::function<void(VcpuStop, const std::string& detail)> on_stop;
    std::function<void()> on_first_run;
    std::function<Result<void>()> enter_sandbox;
    std::function<void(const Error&)> on_failure;
    // Called before every KVM_RUN: parks this thread while the machine is paused and
    // returns true if it did (Vm::pause()).
    std::function<bool()> pause_point;
  };

  Vcpu(unsigned index, VcpuFd fd, IoBus& pio, IoBus& mmio, Hooks hooks)
      : index_(index), fd_(std::move(fd)), pio_(pio), mmio_(mmio), hooks_(std::move(hooks)) {}
  Vcpu(const Vcpu&) = delete;
  ~Vcpu() { join(); }

  const VcpuFd& fd() const { return fd_; }
  void start();
  // Makes KVM_RUN return and the thread exit. Safe from any thread or a signal handler.
  void kick();
  // Makes KVM_RUN return without stopping the thread, so it reaches `pause_point`. Safe from
  // any thread.
  void interrupt();
  void join();
  // On this vCPU's thread, after interrupt() and before parking: runs KVM_RUN once (it
  // returns at once) if the last exit was a port or MMIO access, which KVM finishes only on
  // the next entry. Afterwards the registers KVM reports are complete.
  void complete_pending_exit();

  // A printable dump of the registers, for crash reports.
  std::string register_dump() const;

 private:
  void thread_main();
  // Returns false when the vCPU should stop.
  bool handle_exit();
  bool handle_io(kvm_run* run);
  bool handle_mmio(kvm_run* run);
  void stop_with(VcpuStop why, const std::string& detail);

  unsigned index_;
  VcpuFd fd_;
  IoBus& pio_;
  IoBus& mmio_;
  Hooks hooks_;
  std::thread thread_;
  std::atomic<pthread_t> native_{};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  bool exit_pending_ = false;  // vCPU thread only: an I/O exit KVM completes on re-entry
};

}  // namespace microvm
