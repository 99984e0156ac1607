// Scenario `api`: REST API latency over the Unix socket of `microvm run --api-sock` (no guest
// runs while it is measured: the API answers before InstanceStart, so this times the server,
// not the guest). Variants:
//   microvm  an in-process HTTP/1.1 client, one keep-alive connection (the server's latency)
//            plus a new connection per request (what a one-shot client pays on our side)
//   curl     `curl --unix-socket` per request, as a shell script would call it (dominated
//            by curl's own start-up; for comparison with what users measure by hand)
// Each run also times PUT /actions InstanceStart for a guest that halts at once: the
// synchronous Vm::create behind it (Firecracker's start is synchronous too).
//
// Knob: MICROVM_BENCH_API_REQUESTS  requests per metric and run (default 2000; curl: 1/20th)
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "base/fd.h"
#include "cli/bench/child_process.h"
#include "cli/bench/probe_image.h"
#include "cli/bench/scenario.h"

namespace microvm::bench {

namespace {

using Micros = std::chrono::duration<double, std::micro>;

Result<Fd> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return fail(EINVAL, "socket path too long: " + path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return fail_errno("connect " + path);
  return fd;
}

// One request on a keep-alive connection; returns the status. Reads exactly one answer
// (head + Content-Length body; 204 has none), with a 10 s limit per read.
Result<int> round_trip(int fd, const std::string& request) {
  for (size_t off = 0; off < request.size();) {
    ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_errno("send");
    off += static_cast<size_t>(n);
  }
  std::string got;
  for (;;) {
    size_t head_end = got.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t body = 0;
      size_t cl = got.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) body = std::strtoul(got.c_str() + cl + 16, nullptr, 10);
      if (got.size() >= head_end + 4 + body) {
        if (!got.starts_with("HTTP/1.1 ")) return fail(EPROTO, "not an HTTP answer");
        return std::atoi(got.c_str() + 9);
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) return fail(ETIMEDOUT, "no answer within 10 s");
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(EPROTO, "connection closed before the answer was complete");
    got.append(buf, static_cast<size_t>(n));
  }
}

std::string request(const std::string& method, const std::string& path, const std::string& body) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\n";
  if (!body.empty()) r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void add_latencies(RunOutput& out, const std::string& name, const std::vector<double>& us) {
  out.metrics[name + "_p50_us"] = {percentile(us, 50), "us", true};
  out.metrics[name + "_p99_us"] = {percentile(us, 99), "us", true};
}

constexpr char kMachineConfig[] = R"({"vcpu_count":1,"mem_size_mib":32})";

class ApiScenario final : public Scenario {
 public:
  std::string_view name() const override { return "api"; }
  std::string_view description() const override {
    return "REST API round trips over the Unix socket (GET /, PUT /machine-config) and PUT /actions "
           "InstanceStart, microvm's own keep-alive client vs curl --unix-socket per request";
  }
  bool device_mode() const override { return true; }  // no guest runs while measuring
  std::vector<std::string> baselines() const override { return {"curl"}; }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {{"get_root_p50_us", "GET / round trip, median (microvm: one keep-alive connection; curl: a process each)"},
            {"get_root_p99_us", "GET / round trip, 99th percentile"},
            {"put_machine_config_p50_us", "PUT /machine-config round trip (JSON parsed and applied), median"},
            {"put_machine_config_p99_us", "PUT /machine-config round trip, 99th percentile"},
            {"get_root_new_connection_p50_us", "connect + GET / + close, median (microvm variant only)"},
            {"get_root_new_connection_p99_us", "connect + GET / + close, 99th percentile"},
            {"instance_start_ms",
             "PUT /actions InstanceStart round trip: Vm::create of a 32 MiB, 1-vCPU VM whose "
             "guest halts at once"}};
  }
  std::vector<std::string> notes(const BenchContext&) const override {
    return {"The server is `microvm run --api-sock` without --kernel: no guest runs while requests are timed.",
            "The curl variant spawns one curl per request, so it mostly measures curl's start-up; it runs 1/20th "
            "of the requests.",
            "Percentiles are computed within one run; the report then takes the median over runs."};
  }
  Result<void> prepare(const BenchContext& ctx) override {
    const char* n = std::getenv("MICROVM_BENCH_API_REQUESTS");
    if (n && *n) requests_ = std::max(20ul, std::strtoul(n, nullptr, 10));
    halt_elf_ = ctx.work_dir + "/api-halt.elf";
    return write_file(halt_elf_, make_probe_elf(ProbeKind::kHalt));
  }

  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    std::string sock = ctx.work_dir + "/api-bench.sock";
    ::unlink(sock.c_str());
    auto vmm = TRY(ChildProcess::spawn({ctx.microvm_binary, "run", "--api-sock", sock, "--no-rng"},
                                       {"", ctx.work_dir + "/api-bench.err"}));
    Fd keep = TRY(wait_for_socket(sock, vmm));
    RunOutput out;
    const std::string get = request("GET", "/", ""), put = request("PUT", "/machine-config", kMachineConfig);
    if (variant == kSubjectVariant) {
      for (size_t i = 0; i < 50; ++i) TRY(expect(round_trip(keep.get(), get), 200));  // warm-up
      add_latencies(out, "get_root", TRY(time_keep_alive(keep.get(), get, 200, requests_)));
      add_latencies(out, "put_machine_config", TRY(time_keep_alive(keep.get(), put, 204, requests_)));
      std::vector<double> fresh;
      for (size_t i = 0; i < requests_ / 4; ++i) {
        auto t0 = Clock::now();
        Fd c = TRY(connect_unix(sock));
        TRY(expect(round_trip(c.get(), get), 200));
        fresh.push_back(Micros(Clock::now() - t0).count());
      }
      add_latencies(out, "get_root_new_connection", fresh);
    } else {
      size_t n = std::max<size_t>(20, requests_ / 20);
      add_latencies(out, "get_root", TRY(time_curl(ctx, sock, {"http://localhost/"}, n)));
      add_latencies(
          out, "put_machine_config",
          TRY(time_curl(ctx, sock, {"-X", "PUT", "-d", kMachineConfig, "http://localhost/machine-config"}, n)));
    }
    // InstanceStart through the keep-alive connection for both variants: the number is the
    // server side's, the same for any client.
    TRY(expect(round_trip(keep.get(), request("PUT", "/boot-source",
                                              "{\"kernel_image_path\":\"" + halt_elf_ + "\",\"boot_args\":\"\"}")),
               204));
    auto t0 = Clock::now();
    TRY(expect(round_trip(keep.get(), request("PUT", "/actions", R"({"action_type":"InstanceStart"})")), 204));
    out.metrics["instance_start_ms"] = {std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), "ms",
                                        true};
    (void)round_trip(keep.get(), request("PUT", "/actions", R"({"action_type":"x-microvm-Stop"})"));
    if (!vmm.wait_for(std::chrono::seconds(10))) vmm.signal_group(SIGKILL);
    out.details["requests_per_metric"] = std::to_string(variant == kSubjectVariant ? requests_ : requests_ / 20);
    return out;
  }

 private:
  static Result<void> expect(Result<int> status, int want) {
    if (!status) return std::unexpected(status.error());
    if (*status != want)
      return fail(EPROTO, "answer " + std::to_string(*status) + ", expected " + std::to_string(want));
    return {};
  }
  static Result<Fd> wait_for_socket(const std::string& sock, ChildProcess& vmm) {
    for (int i = 0; i < 1000; ++i) {
      if (auto fd = connect_unix(sock)) return std::move(*fd);
      if (vmm.wait_for(std::chrono::milliseconds(10))) return fail(EIO, "microvm run --api-sock exited early");
    }
    return fail(ETIMEDOUT, "the API socket did not appear within 10 s");
  }
  static Result<std::vector<double>> time_keep_alive(int fd, const std::string& req, int want, size_t n) {
    std::vector<double> us;
    us.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      auto t0 = Clock::now();
      TRY(expect(round_trip(fd, req), want));
      us.push_back(Micros(Clock::now() - t0).count());
    }
    return us;
  }
  static Result<std::vector<double>> time_curl(const BenchContext& ctx, const std::string& sock,
                                               const std::vector<std::string>& args, size_t n) {
    std::vector<std::string> argv = {"curl", "-sf", "-o", "/dev/null", "--unix-socket", sock};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<double> us;
    for (size_t i = 0; i < n; ++i) {
      auto child = TRY(ChildProcess::spawn(argv, {"", ctx.work_dir + "/curl.err"}));
      if (!child.wait_for(std::chrono::seconds(10))) return fail(ETIMEDOUT, "curl did not finish in 10 s");
      if (exit_code_of(*child.status()) != 0) return fail(EIO, "curl failed: " + describe_status(*child.status()));
      us.push_back(Micros(child.exit_time() - child.started()).count());
    }
    return us;
  }

  size_t requests_ = 2000;
  std::string halt_elf_;
};

}  // namespace

void register_api(ScenarioRegistry& registry) { registry.add(std::make_unique<ApiScenario>()); }

}  // namespace microvm::bench
