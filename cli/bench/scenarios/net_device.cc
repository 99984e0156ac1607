// Scenario `net` (device mode, no guest): the virtio-net data path in-process. A host thread
// plays the guest driver against the real NetDevice and the real tap backend, in a private
// network namespace the harness creates and removes (bench/net/device_driver.h); the `host`
// baseline is a plain loop doing the same tap writes and reads with no virtio in between
// (bench/net/tap_loop.h). Needs root (network namespace, tap, packet socket). Knobs, for short
// runs (tests), come from the environment:
//   MICROVM_BENCH_NET_SECONDS   time per workload and run (default 2)
//   MICROVM_BENCH_NET_ONLY      run only the workloads whose name contains this (tx, rx_64b, ...)
#include <cstdlib>
#include <string>

#include "bench/net/device_driver.h"
#include "bench/net/tap_loop.h"
#include "bench/net/user_net_echo.h"
#include "bench/net/workload.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

double env_double(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v, &end);
  return end && *end == '\0' && d > 0 ? d : fallback;
}

std::string describe(const netbench::Workload& w) {
  std::string dir = w.direction == netbench::Direction::kTx ? "TX (guest -> tap)" : "RX (tap -> guest)";
  return dir + ", " + std::to_string(w.frame_bytes) + "-byte frames" + (w.tso ? " (TCPv4 TSO, MSS 1448)" : "");
}

class NetDeviceScenario final : public Scenario {
 public:
  std::string_view name() const override { return "net"; }
  std::string_view description() const override {
    return "device mode: virtio-net + tap in a private network namespace driven by a host thread as the guest "
           "driver; 64 B, 1514 B and 64 KiB TSO frames, TX and RX";
  }
  std::vector<std::string> baselines() const override { return {"host"}; }
  bool device_mode() const override { return true; }
  std::vector<std::string> notes(const BenchContext&) const override {
    return {
        "No guest and no KVM: a host thread writes descriptors into memfd guest RAM, kicks an eventfd (as KVM's "
        "ioeventfd would) and sleeps on the eventfd the device's interrupt signals (as an irqfd would). It "
        "negotiates what Linux's virtio_net does (EVENT_IDX, indirect descriptors, MRG_RXBUF, checksum and TSO "
        "offloads). The device runs on its own event-loop thread, as in the VMM.",
        "host = a plain loop on the same kind of tap (IFF_VNET_HDR, same offloads) in the same kind of namespace: "
        "write() of header + frame for TX, read() for RX, cycling through as much memory as the guest's rings "
        "cover. Throughput metrics: higher is better, so the table's baseline/microvm ratio reads below 1 when "
        "microvm is faster; microvm/host is its inverse.",
        "TX: the far side is the tap's kernel side. Frames go to a MAC that is not the tap's, so the kernel accepts "
        "each frame (counted in the tap's rx_packets, checked against the device's count) and drops it at IP "
        "input, for both variants alike. TSO frames reach the kernel as one 64 KiB super-frame; nothing on this "
        "path segments them.",
        "RX: one injector thread sends the frames into the tap's kernel side through a packet socket (sendmmsg, "
        "qdisc bypassed, GSO super-frames as one), at most 384 frames (64 for TSO) ahead of the receiver, which "
        "counts only intact frames of its own (length and tag checked). The same injector serves both variants.",
        "user_slirp_* and user_passt_* (microvm variant only): user networking. A host thread connects to the "
        "backend's port forward and echoes; a second thread plays guest and event loop: it accepts the forwarded "
        "TCP connection and streams 1460-byte segments (1514-byte frames, both backends alike) through "
        "NetBackend::send/recv, acknowledging the echo. The two backends run back to back in one run, in "
        "alternating order. mib_s is the echoed payload; loop_cpu_ns_per_frame the guest/loop thread per guest "
        "frame (sent + received); total_cpu_ns_per_frame adds the passt process (libslirp works inside the loop "
        "thread). The virtqueue in front is the same for both and is what the tap rows measure.",
        "cpu_ns_per_frame is the CPU time, per frame, of the thread doing the tap I/O (the device's event-loop "
        "thread, or the baseline loop). On a loaded host throughput follows the CPU share a thread gets; CPU per "
        "frame does not, so it is the steadier measure of what the device path costs."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> d;
    for (const auto& w : netbench::default_workloads()) {
      d[w.name + "_pps"] = "frames per second, " + describe(w);
      d[w.name + "_gbps"] = "Gbit/s of Ethernet frames, " + describe(w);
      d[w.name + "_cpu_ns_per_frame"] = "CPU ns per frame of the tap I/O thread, " + describe(w);
    }
    for (const char* b : {"slirp", "passt"}) {
      std::string p = std::string("user_") + b;
      std::string how = std::string(b) == "slirp" ? "--net user (libslirp in the loop thread)" : "--net passt";
      d[p + "_mib_s"] = "MiB/s of guest TCP payload echoed by a host socket, " + how;
      d[p + "_loop_cpu_ns_per_frame"] = "CPU ns per guest frame of the guest/loop thread, " + how;
      d[p + "_total_cpu_ns_per_frame"] = "CPU ns per guest frame, loop thread + passt process, " + how;
    }
    return d;
  }
  Result<void> prepare(const BenchContext&) override {
    options_.seconds = env_double("MICROVM_BENCH_NET_SECONDS", 2);
    const char* only = std::getenv("MICROVM_BENCH_NET_ONLY");
    workloads_.clear();
    for (const auto& w : netbench::default_workloads())
      if (!only || !*only || w.name.find(only) != std::string::npos) workloads_.push_back(w);
    user_ = !only || !*only || std::string("user_slirp_passt").find(only) != std::string::npos;
    if (workloads_.empty() && !user_) return fail(EINVAL, "MICROVM_BENCH_NET_ONLY matches no workload");
    return {};
  }
  Result<RunOutput> run_once(const BenchContext&, std::string_view variant) override {
    RunOutput out;
    bool subject = variant == kSubjectVariant;
    for (const auto& w : workloads_) {
      auto r = subject ? netbench::run_device(options_, w) : netbench::run_tap_loop(options_, w);
      if (!r) return std::unexpected(r.error().context(w.name));
      char buf[200];
      if (subject)
        std::snprintf(buf, sizeof buf,
                      "%llu frames in %.3f s; kicks/frame %.4f, interrupts/frame %.4f, driver CPU %.0f ns/frame",
                      static_cast<unsigned long long>(r->frames), r->seconds,
                      r->frames ? double(r->kicks) / double(r->frames) : 0.0,
                      r->frames ? double(r->interrupts) / double(r->frames) : 0.0,
                      r->frames ? r->driver_cpu_seconds * 1e9 / double(r->frames) : 0.0);
      else
        std::snprintf(buf, sizeof buf, "%llu frames in %.3f s; plain %s on the tap fd",
                      static_cast<unsigned long long>(r->frames), r->seconds,
                      w.direction == netbench::Direction::kTx ? "write()" : "read()");
      out.details[w.name] = buf;
      if (r->tap_drops) out.details[w.name + "_tap_drops"] = std::to_string(r->tap_drops);
      out.metrics[w.name + "_pps"] = {r->pps(), "frames/s", false};
      out.metrics[w.name + "_gbps"] = {r->gbps(), "Gbit/s", false};
      out.metrics[w.name + "_cpu_ns_per_frame"] = {r->io_cpu_ns_per_frame(), "ns", true};
    }
    if (subject && user_) TRY(run_user_net(out));
    return out;
  }

 private:
  // Both user-networking backends, in the opposite order each time (drifting load hits both).
  Result<void> run_user_net(RunOutput& out) {
    using netbench::UserBackend;
    UserBackend order[2] = {UserBackend::kSlirp, UserBackend::kPasst};
    if (user_runs_++ % 2) std::swap(order[0], order[1]);
    for (UserBackend b : order) {
      auto r = netbench::run_user_echo(b, options_.seconds);
      std::string p = std::string("user_") + netbench::user_backend_name(b);
      if (!r) return std::unexpected(r.error().context(p));
      char buf[200];
      std::snprintf(buf, sizeof buf, "%llu bytes echoed in %.3f s, %llu guest frames, %llu go-back-N rounds%s",
                    static_cast<unsigned long long>(r->echoed_bytes), r->seconds,
                    static_cast<unsigned long long>(r->frames), static_cast<unsigned long long>(r->retransmits),
                    b == UserBackend::kPasst ? "; passt CPU included in total" : "");
      out.details[p] = buf;
      out.metrics[p + "_mib_s"] = {r->mib_per_second(), "MiB/s", false};
      out.metrics[p + "_loop_cpu_ns_per_frame"] = {r->loop_cpu_ns_per_frame(), "ns", true};
      out.metrics[p + "_total_cpu_ns_per_frame"] = {r->total_cpu_ns_per_frame(), "ns", true};
    }
    return {};
  }

  bool user_ = true;
  unsigned user_runs_ = 0;
  netbench::RunOptions options_;
  std::vector<netbench::Workload> workloads_;
};

}  // namespace

void register_net_device(ScenarioRegistry& registry) { registry.add(std::make_unique<NetDeviceScenario>()); }

}  // namespace microvm::bench
