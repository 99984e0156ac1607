// Vm::pause(), resume() and info(): the control-plane calls an API server makes from its
// own threads while run() serves the guest on others.
//
// Parking: pause() sets control_ to kControlPause and interrupts every vCPU; each one
// parks in vcpu_pause_point() before its next KVM_RUN. Once all are parked, a task posted to
// the event loop saves kvmclock and holds the loop, so no device handler runs (no device
// DMA into guest RAM) until resume(). Every wait is on a futex word, so stop() can end a
// paused machine from a signal handler.
//
// kvmclock: Cloud Hypervisor's way (KVM_GET_CLOCK at pause, KVM_SET_CLOCK at resume), not
// Firecracker's (which leaves the clock running, so the guest sees the pause as a jump and
// fires every timer that expired meanwhile, and watchdogs may report soft lockups). A frozen
// clock keeps the guest's monotonic time continuous; its wall clock lags by the paused
// time until NTP corrects it, which is the usual contract of a paused VM. The guest TSC is
// not adjusted: it keeps counting while paused.
#include <time.h>

#include "microvm/guest_abi.h"
#include "virtio/balloon/balloon_spec.h"
#include "virtio/balloon/device.h"
#include "vmm/machine.h"
#include "vmm/virtio_wiring.h"

namespace microvm {
namespace {

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void Machine::mark_exiting() {
  control_.store(kControlExit);
  control_events_.add(1);
}

void Machine::note_run_started() {
  run_started_ns_.store(monotonic_ns());
  state_.store(VmState::kRunning);
  emit("started");
}

void Machine::emit(const char* type, std::string detail) const {
  if (config_.on_event) config_.on_event(VmEvent{type, std::move(detail)});
}

void Machine::note_run_ended() {
  run_ended_ns_.store(monotonic_ns());
  std::lock_guard lock(control_mu_);  // after any pause()/resume() in progress has given up
  state_.store(VmState::kStopped);
}

template <class Done>
bool Machine::wait_for_control(Done done) {
  for (;;) {
    uint32_t seen = control_events_.load();
    if (control_.load() == kControlExit) return false;
    if (done()) return true;
    control_events_.wait(seen);
  }
}

bool Machine::vcpu_pause_point(unsigned index) {
  uint32_t c = control_.load();
  if (c != kControlPause && c != kControlResumeLoop) return false;
  // A port or MMIO read handled in user space is finished by the next KVM_RUN; do that now
  // (it returns at once, immediate_exit is set), so the state a snapshot reads while we are
  // parked is complete.
  vcpus_[index]->complete_pending_exit();
  vcpus_parked_.fetch_add(1);
  control_events_.add(1);
  while ((c = control_.load()) == kControlPause || c == kControlResumeLoop) control_.wait(c);
  vcpus_parked_.fetch_sub(1);
  control_events_.add(1);
  return true;
}

void Machine::hold_loop_while_paused() {
  if (control_.load() != kControlPause) return;  // resumed or stopped before we got here
  // The vCPUs are parked, so the clock read here is the last time the guest saw.
  auto clock = vm_->get_clock();
  if (!clock) log_.log(LogLevel::kWarn, "pause: %s; guest time will include the pause", clock.error().what.c_str());
  if (clock)
    paused_clock_ = *clock;
  else
    paused_clock_.reset();
  loop_held_.store(true);
  control_events_.add(1);
  uint32_t c;
  while ((c = control_.load()) == kControlPause) control_.wait(c);
  if (c == kControlResumeLoop && clock) {
    if (auto restored = vm_->set_clock(*clock); !restored)
      log_.log(LogLevel::kWarn, "resume: %s; guest time will include the pause", restored.error().what.c_str());
  }
  loop_held_.store(false);
  control_events_.add(1);
}

Result<void> Machine::pause() {
  std::lock_guard lock(control_mu_);
  VmState s = state_.load();
  if (s == VmState::kPaused) return fail("pause: the VM is already paused");
  if (s != VmState::kRunning) return fail("pause: the VM is not running");
  if (!control_.compare_exchange(kControlRun, kControlPause)) return fail("pause: the VM is stopping");
  for (auto& v : vcpus_) v->interrupt();
  const uint32_t n = static_cast<uint32_t>(vcpus_.size());
  // vCPUs first: one may be waiting for the loop (device activation) before it can park.
  if (!wait_for_control([&] { return vcpus_parked_.load() == n; })) return fail("pause: the VM stopped");
  loop_->post([this] { hold_loop_while_paused(); });
  if (!wait_for_control([&] { return loop_held_.load(); })) return fail("pause: the VM stopped");
  state_.store(VmState::kPaused);
  log_.log(LogLevel::kInfo, "paused");
  emit("paused");
  return {};
}

void Machine::enter_initial_pause() {
  std::lock_guard lock(control_mu_);
  const uint32_t n = static_cast<uint32_t>(vcpus_.size());
  if (!wait_for_control([&] { return vcpus_parked_.load() == n; })) return;
  loop_->post([this] { hold_loop_while_paused(); });
  if (!wait_for_control([&] { return loop_held_.load(); })) return;
  state_.store(VmState::kPaused);
  log_.log(LogLevel::kInfo, "started paused");
}

Result<void> Machine::resume() {
  std::lock_guard lock(control_mu_);
  if (state_.load() != VmState::kPaused) return fail("resume: the VM is not paused");
  // The loop first: it restores kvmclock before any vCPU reads it.
  if (!control_.compare_exchange(kControlPause, kControlResumeLoop)) return fail("resume: the VM stopped");
  if (!wait_for_control([&] { return !loop_held_.load(); })) return fail("resume: the VM stopped");
  if (!control_.compare_exchange(kControlResumeLoop, kControlRun)) return fail("resume: the VM stopped");
  // Wait until every vCPU has left its park, so a pause() right after this one starts clean.
  // The guest may already have powered off by then (a power-button press queued while
  // paused): the resume itself happened, so that is success; run() records the stop after
  // this (it takes control_mu_).
  wait_for_control([&] { return vcpus_parked_.load() == 0; });
  state_.store(VmState::kRunning);
  log_.log(LogLevel::kInfo, "resumed");
  emit("resumed");
  return {};
}

void Machine::set_sci(bool level) {
  if (auto r = vm_->irq_line(MICROVM_ACPI_SCI_IRQ, level); !r)
    log_.log(LogLevel::kWarn, "ACPI SCI: %s", r.error().what.c_str());
}

void Machine::on_pvpanic(uint8_t events) {
  if (events & MICROVM_PVPANIC_CRASH_LOADED)
    log_.log(LogLevel::kWarn, "guest panicked; its crash kernel is taking over (pvpanic)");
  if (events & MICROVM_PVPANIC_PANICKED) {
    log_.log(LogLevel::kError, "guest kernel panicked (pvpanic)");
    emit("guest-panic");
    request_exit(VmExitReason::kPanicked, "guest kernel panicked (pvpanic)");
  }
}

Result<void> Machine::request_shutdown() {
  VmState s = state_.load();
  if (s == VmState::kCreated) return fail("shutdown: the VM is not running");
  if (s == VmState::kStopped || control_.load() == kControlExit) return fail("shutdown: the VM has stopped");
  // Pressed on the loop thread, whose sandbox allows KVM_IRQ_LINE, so the caller's thread
  // needs no KVM access. While paused the press waits in the loop's queue until resume().
  loop_->post([this] {
    log_.log(LogLevel::kInfo, "ACPI power button pressed");
    power_->press_power_button();
  });
  emit("shutdown-requested", "ACPI power button");
  return {};
}

Result<void> Machine::set_balloon(uint64_t bytes) {
  BalloonDevice* balloon = virtio_ ? virtio_->balloon() : nullptr;
  if (!balloon) return fail(EINVAL, "this VM has no balloon device (--balloon)");
  if (bytes > memory_->total_size()) return fail(EINVAL, "balloon size is larger than guest memory");
  VmState s = state_.load();
  if (s == VmState::kStopped || control_.load() == kControlExit) return fail("balloon: the VM has stopped");
  if (s == VmState::kCreated) return balloon->set_target_bytes(bytes);  // nothing runs yet: set it here
  // The device and its interrupt belong to the loop thread; the new target is in place (and
  // the guest told) once the loop gets to it, also after a resume when paused.
  loop_->post([this, balloon, bytes] {
    if (auto r = balloon->set_target_bytes(bytes); !r) log_.log(LogLevel::kWarn, "balloon: %s", r.error().what.c_str());
  });
  return {};
}

Result<BalloonStats> Machine::balloon_stats() const {
  BalloonDevice* balloon = virtio_ ? virtio_->balloon() : nullptr;
  if (!balloon) return fail(EINVAL, "this VM has no balloon device (--balloon)");
  BalloonStatus st = balloon->status();
  BalloonStats out;
  out.target_bytes = uint64_t{st.target_pages} * kBalloonPageSize;
  out.actual_bytes = uint64_t{st.actual_pages} * kBalloonPageSize;
  out.inflate_released_bytes = value(balloon->counters().inflate_released_bytes);
  out.report_released_bytes = value(balloon->counters().report_released_bytes);
  if (st.stats) {
    const auto& v = st.stats->values;
    out.swap_in = v[VIRTIO_BALLOON_S_SWAP_IN];
    out.swap_out = v[VIRTIO_BALLOON_S_SWAP_OUT];
    out.major_faults = v[VIRTIO_BALLOON_S_MAJFLT];
    out.minor_faults = v[VIRTIO_BALLOON_S_MINFLT];
    out.free_memory = v[VIRTIO_BALLOON_S_MEMFREE];
    out.total_memory = v[VIRTIO_BALLOON_S_MEMTOT];
    out.available_memory = v[VIRTIO_BALLOON_S_AVAIL];
    out.disk_caches = v[VIRTIO_BALLOON_S_CACHES];
    out.hugetlb_allocations = v[VIRTIO_BALLOON_S_HTLB_PGALLOC];
    out.hugetlb_failures = v[VIRTIO_BALLOON_S_HTLB_PGFAIL];
  }
  return out;
}

VmInfo Machine::info() const {
  VmInfo i;
  i.state = state_.load();
  if (i.state != VmState::kCreated && control_.load() == kControlExit) i.state = VmState::kStopped;
  i.vcpus = config_.cpus;
  i.memory_bytes = config_.memory_bytes;
  if (int64_t start = run_started_ns_.load()) {
    int64_t end = run_ended_ns_.load();
    i.uptime = std::chrono::microseconds(((end ? end : monotonic_ns()) - start) / 1000);
  }
  return i;
}

std::vector<MetricGroup> Machine::metrics() const {
  std::vector<MetricGroup> out;
  VmInfo i = info();
  out.push_back({"vm",
                 {{"uptime_us", static_cast<uint64_t>(i.uptime.count())},
                  {"vcpus", i.vcpus},
                  {"memory_bytes", i.memory_bytes},
                  {"paused", i.state == VmState::kPaused ? 1u : 0u}}});
  MetricGroup vcpu{"vcpu", {}};
  for (const auto& v : vcpus_) {
    size_t k = 0;
    v->counters().visit([&](const char* name, uint64_t value) {
      if (k == vcpu.counters.size()) vcpu.counters.emplace_back(name, 0);
      vcpu.counters[k++].second += value;
    });
  }
  out.push_back(std::move(vcpu));
  if (virtio_) virtio_->metrics(out);
  if (console_out_)
    out.push_back(
        {"console",
         {{"written_bytes", console_out_->written_bytes()}, {"dropped_bytes", console_out_->dropped_bytes()}}});
  if (loop_)
    out.push_back(
        {"event_loop",
         {{"wakeups", loop_->wakeups()}, {"handlers_run", loop_->handlers_run()}, {"tasks_run", loop_->tasks_run()}}});
  out.push_back(
      {"io_bus", {{"unhandled_pio", pio_.unhandled_accesses()}, {"unhandled_mmio", mmio_.unhandled_accesses()}}});
  return out;
}

}  // namespace microvm
