// Scenario `guest_net` (guest mode): TCP throughput both ways (iperf3) and request/response
// latency (tcp_rr, bench/guest/image/tcp_rr.c) between the guest and the host, over user
// networking (libslirp; QEMU: -netdev user) and over a tap, under microvm and (--compare qemu)
// QEMU. Everything runs in a network namespace the scenario creates (ip netns), so the tap,
// the addresses and the host-side servers cannot collide with the machine's own network:
// the VMM runs inside it with eth0 = user networking and eth1 = the tap (192.168.77.1 host
// side, .2 guest side); slirp's host address 10.0.2.2 reaches the namespace's loopback.
// Needs root (ip netns, tuntap), iperf3 and a C compiler for the static tcp_rr.
//
// Knobs: MICROVM_BENCH_GUEST_SECONDS (per test, default 5), MICROVM_BENCH_GUEST_NET
// ("user,tap" default, or one of them), MICROVM_BENCH_GUEST_IPERF3 (default /usr/bin/iperf3).
#include <unistd.h>

#include <cmath>
#include <sstream>

#include "cli/bench/child_process.h"
#include "cli/bench/guest_workload.h"
#include "cli/bench/scenario.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

constexpr char kTapHostIp[] = "192.168.77.1";
constexpr char kTapGuestIp[] = "192.168.77.2";

// Runs a short command to completion; fails with its output.
Result<void> run_checked(const BenchContext& ctx, const std::vector<std::string>& argv) {
  std::string log = ctx.work_dir + "/guest-net-cmd.log";
  auto child = TRY(ChildProcess::spawn(argv, {log, log}));
  if (!child.wait_for(std::chrono::seconds(30))) return fail(argv[0] + " did not finish in 30 s");
  if (exit_code_of(*child.status()) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return fail(cmd + ": " + describe_status(*child.status()) + ": " + read_file(log).value_or(""));
  }
  return {};
}

// "[  5]   0.00-5.00   sec  112 MBytes   188 Mbits/sec   receiver" -> 188.
std::optional<double> mbits_from_iperf_line(const std::string& line) {
  size_t at = line.find(" Mbits/sec");
  if (at == std::string::npos) return std::nullopt;
  size_t start = line.rfind(' ', at - 1);
  if (start == std::string::npos) return std::nullopt;
  char* end = nullptr;
  std::string num = line.substr(start + 1, at - start - 1);
  double v = std::strtod(num.c_str(), &end);
  if (!end || *end != '\0' || v < 0) return std::nullopt;
  return v;
}

std::optional<double> field(const std::string& text, const std::string& key) {
  size_t at = text.find(key + "=");
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str() + at + key.size() + 1, &end);
  if (end == text.c_str() + at + key.size() + 1) return std::nullopt;
  return v;
}

class GuestNetScenario final : public Scenario {
 public:
  ~GuestNetScenario() override { teardown(); }
  std::string_view name() const override { return "guest_net"; }
  std::string_view description() const override {
    return "guest mode: TCP throughput guest->host and host->guest (iperf3) and 1-byte TCP request/response latency, "
           "over user networking (slirp) and over a tap in a private network namespace";
  }
  std::vector<std::string> baselines() const override { return {"qemu"}; }
  std::vector<std::string> notes(const BenchContext& ctx) const override {
    return {
        "The scenario creates a network namespace with a tap (192.168.77.1/24) and runs the VMM and the host "
        "servers (iperf3 -s, tcp_rr server) inside it. Guest eth0 = user networking (the guest connects to "
        "10.0.2.2, which slirp maps to the namespace's loopback), eth1 = the tap. Guest: " +
            std::to_string(workload_cpus(ctx)) +
            " vCPU(s) (--cpus); each test is retried up to 3 times if its tool dies.",
        "microvm: --net user --net tap=NAME,vhost=off; QEMU: -netdev user and -netdev tap (script=no, no vhost), "
        "virtio-net-pci on -M microvm,acpi=on,pcie=on. Both use their userspace data path.",
        "iperf3 -c HOST -t S -f m in the guest (-R for host->guest), the receiver's Mbit/s; tcp_rr: one byte "
        "each way per transaction, TCP_NODELAY, mean microseconds per transaction."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    std::map<std::string, std::string> d;
    for (const char* n : {"user", "tap"}) {
      std::string p = n;
      d[p + "_tcp_guest_to_host_mbit_s"] = "iperf3, guest sends, " + p + " networking (receiver's rate)";
      d[p + "_tcp_host_to_guest_mbit_s"] = "iperf3 -R, host sends, " + p + " networking (receiver's rate)";
      d[p + "_tcp_rr_latency_us"] = "mean TCP 1-byte request/response round trip, " + p + " networking";
    }
    d["guest_run_s"] = "spawn -> VMM exit: boot, every test, power-off";
    return d;
  }
  Result<void> prepare(const BenchContext& ctx) override {
    seconds_ = std::max(1l, round_positive(env_positive("MICROVM_BENCH_GUEST_SECONDS", 5)));
    std::string nets = env_text("MICROVM_BENCH_GUEST_NET", "user,tap");
    user_ = nets.find("user") != std::string::npos;
    tap_ = nets.find("tap") != std::string::npos;
    if (!user_ && !tap_) return fail("MICROVM_BENCH_GUEST_NET names neither user nor tap: " + nets);
    std::string iperf3 = env_text("MICROVM_BENCH_GUEST_IPERF3", "/usr/bin/iperf3");
    // A private namespace and tap, named after this process so parallel runs do not collide.
    ns_ = "mvbench" + std::to_string(::getpid());
    tap_name_ = "mvbtap" + std::to_string(::getpid() % 100000);
    port_iperf_ = 20000 + static_cast<int>(::getpid() % 20000);
    port_rr_ = port_iperf_ + 1;
    TRY(run_checked(ctx, {"ip", "netns", "add", ns_}));
    ns_created_ = true;
    TRY(run_checked(ctx, {"ip", "-n", ns_, "link", "set", "lo", "up"}));
    TRY(run_checked(ctx, {"ip", "-n", ns_, "tuntap", "add", "mode", "tap", "name", tap_name_}));
    TRY(run_checked(ctx, {"ip", "-n", ns_, "addr", "add", std::string(kTapHostIp) + "/24", "dev", tap_name_}));
    TRY(run_checked(ctx, {"ip", "-n", ns_, "link", "set", tap_name_, "up"}));
    // tcp_rr, static so it needs nothing in the initramfs and runs on the host too.
    rr_ = ctx.work_dir + "/tcp_rr";
    TRY(run_checked(ctx, {"cc", "-O2", "-static", "-o", rr_, ctx.source_dir + "/bench/guest/image/tcp_rr.c"}));
    iperf3_ = iperf3;
    TRY(start_servers(ctx));
    std::ostringstream s;
    s << "set -u\nRT=" << seconds_
      << "\nip link set lo up\n"
      // Up to 3 tries per test: a process may die of the 1-vCPU segfault flake of the test kernel.
      << "try3() {  # key command...\n"
      << "  k=$1; shift\n"
      << "  for t in 1 2 3; do\n"
      << "    out=$(\"$@\" 2>&1)\n"
      // The line is extracted before the check: a grep that dies (the same flake) must not pass.
      << "    line=$(echo \"$out\" | grep -E 'receiver|mean_us' | tail -n 1)\n"
      << "    case \"$line\" in *receiver*|*mean_us=*) echo \"MVB $k $line\"; return 0;; esac\n"
      << "    sleep 1\n"
      << "  done\n"
      << "  echo \"MVB $k failed $(echo \"$out\" | tail -n 2 | tr '\\n' ' ')\"\n"
      << "}\n";
    auto test = [&](const std::string& net, const std::string& dev, const std::string& guest_ip,
                    const std::string& host_ip) {
      s << "ip link set " << dev << " up\nip addr add " << guest_ip << "/24 dev " << dev << "\n"
        << "sleep 1\n"
        << "try3 " << net << "_g2h iperf3 -c " << host_ip << " -p " << port_iperf_ << " -t $RT -f m\n"
        << "try3 " << net << "_h2g iperf3 -R -c " << host_ip << " -p " << port_iperf_
        << " -t $RT -f m --rcv-timeout 3600000\n"
        << "try3 " << net << "_rr /usr/bin/tcp_rr client " << host_ip << " " << port_rr_ << " $RT\n";
    };
    if (user_) test("user", "eth0", "10.0.2.15", "10.0.2.2");
    if (tap_) test("tap", user_ ? "eth1" : "eth0", kTapGuestIp, kTapHostIp);
    initrd_ = TRY(build_workload_initramfs(ctx, "guest-net", s.str(), {iperf3}, {{rr_, "/usr/bin/tcp_rr"}}));
    return {};
  }
  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    TRY(start_servers(ctx));  // again if one died since the last run
    std::vector<std::string> dev_args;
    if (variant == "qemu") {
      if (user_) dev_args.insert(dev_args.end(), {"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"});
      if (tap_)
        dev_args.insert(dev_args.end(), {"-netdev", "tap,id=n1,ifname=" + tap_name_ + ",script=no,downscript=no",
                                         "-device", "virtio-net-pci,netdev=n1"});
    } else {
      // The guest's iperf3 talks to the host's through 10.0.2.2, which user networking closes by
      // default; QEMU's -netdev user above has it open, so both measure the same path.
      if (user_) dev_args.insert(dev_args.end(), {"--net", "user,host-loopback=on"});
      if (tap_) dev_args.insert(dev_args.end(), {"--net", "tap=" + tap_name_ + ",vhost=off"});
    }
    auto vmm = guest_workload_command(ctx, variant, initrd_, workload_cpus(ctx), dev_args);
    std::vector<std::string> argv = {"ip", "netns", "exec", ns_};
    argv.insert(argv.end(), vmm.begin(), vmm.end());
    auto timeout = ctx.boot_timeout + std::chrono::seconds((seconds_ + 120) * 6);
    auto run = TRY(run_guest_workload(ctx, argv, std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
                                      "guest-net-" + std::string(variant)));
    auto values = marked_values(run.console);
    RunOutput out;
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    out.details["command"] = cmd;
    for (const char* net : {"user", "tap"}) {
      if ((std::string(net) == "user" && !user_) || (std::string(net) == "tap" && !tap_)) continue;
      std::string n = net;
      for (const auto& [suffix, metric] :
           {std::pair{"_g2h", "_tcp_guest_to_host_mbit_s"}, std::pair{"_h2g", "_tcp_host_to_guest_mbit_s"}}) {
        std::string line = values[n + suffix];
        auto v = mbits_from_iperf_line(line);
        if (!v) return fail(n + suffix + ": no iperf3 receiver line from the guest: '" + line + "'");
        out.metrics[n + metric] = {*v, "Mbit/s", false};
      }
      std::string rr = values[n + "_rr"];
      auto us = field(rr, "mean_us");
      if (!us || *us <= 0) return fail(n + "_rr: no tcp_rr result from the guest: '" + rr + "'");
      out.metrics[n + "_tcp_rr_latency_us"] = {*us, "us", true};
      out.details[n + "_tcp_rr"] = rr;
    }
    out.metrics["guest_run_s"] = {run.seconds, "s", true};
    return out;
  }

 private:
  // The host-side servers inside the namespace (started, or restarted if they have exited).
  Result<void> start_servers(const BenchContext& ctx) {
    if (!iperf_server_ || iperf_server_->wait_for(std::chrono::milliseconds(0))) {
      iperf_server_.reset();
      iperf_server_.emplace(TRY(ChildProcess::spawn(
          // A guest whose kernel is emulated can stall for minutes: no idle timeout (default 120 s,
          // after which the server closes the stream and the guest's iperf3 fails with EPIPE).
          {"ip", "netns", "exec", ns_, iperf3_, "-s", "-p", std::to_string(port_iperf_), "--rcv-timeout", "3600000"},
          {ctx.work_dir + "/iperf3-server.out", ctx.work_dir + "/iperf3-server.err"})));
    }
    if (!rr_server_ || rr_server_->wait_for(std::chrono::milliseconds(0))) {
      rr_server_.reset();
      rr_server_.emplace(TRY(ChildProcess::spawn({"ip", "netns", "exec", ns_, rr_, "server", std::to_string(port_rr_)},
                                                 {"", ctx.work_dir + "/tcp_rr-server.err"})));
    }
    return {};
  }

  void teardown() {
    if (iperf_server_) stop(*iperf_server_, std::chrono::seconds(2));
    if (rr_server_) stop(*rr_server_, std::chrono::seconds(2));
    iperf_server_.reset();
    rr_server_.reset();
    if (ns_created_) {
      // Deleting the namespace removes the tap with it.
      if (auto c = ChildProcess::spawn({"ip", "netns", "delete", ns_}, {"", ""})) c->wait_for(std::chrono::seconds(10));
      ns_created_ = false;
    }
  }

  long seconds_ = 5;
  bool user_ = true, tap_ = true, ns_created_ = false;
  std::string ns_, tap_name_, rr_, initrd_, iperf3_;
  int port_iperf_ = 0, port_rr_ = 0;
  std::optional<ChildProcess> iperf_server_, rr_server_;
};

}  // namespace

void register_guest_net(ScenarioRegistry& registry) { registry.add(std::make_unique<GuestNetScenario>()); }

}  // namespace microvm::bench
