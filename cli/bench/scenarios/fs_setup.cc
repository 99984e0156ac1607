// Scenario `fs_setup` (device mode: no guest kernel runs): what a shared folder costs at
// start-up. microvm starts a virtiofsd per --share, waits for its socket, connects and
// negotiates vhost-user before the first vCPU runs; this measures that, next to
//   host: the bare minimum any frontend pays: spawn the same virtiofsd with the same options,
//         wait for its socket, connect;
//   qemu: QEMU with vhost-user-fs-device on the same virtiofsd (started by the harness, as
//         QEMU users do), a whole run of a guest that halts at its first instruction.
// Knobs: MICROVM_BENCH_VIRTIOFSD (the virtiofsd binary; default: PATH, then /usr/lib/qemu,
// /usr/libexec). Needs root, as virtiofsd does.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "cli/bench/child_process.h"
#include "cli/bench/probe_image.h"
#include "cli/bench/scenario.h"
#include "cli/bench/vmm_commands.h"

namespace microvm::bench {

namespace {

constexpr const char* kTag = "benchshare";
constexpr uint64_t kMemoryMib = 64;  // the halting guest touches none of it

Metric ms(double v) { return {v, "ms", true}; }
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

bool executable(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

// The same search order as microvm's own (devices/vhost/virtiofsd_process.h), so both
// variants run the same binary; the scenario states which in its details.
std::string find_virtiofsd() {
  if (const char* v = std::getenv("MICROVM_BENCH_VIRTIOFSD"); v && *v) return v;
  if (const char* path = std::getenv("PATH")) {
    std::string all(path);
    for (size_t start = 0; start <= all.size();) {
      size_t end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      std::string candidate = all.substr(start, end - start) + "/virtiofsd";
      if (end > start && executable(candidate)) return candidate;
      start = end + 1;
    }
  }
  for (const char* p : {"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"})
    if (executable(p)) return p;
  return "";
}

// virtiofsd's command line as microvm builds it.
std::vector<std::string> virtiofsd_command(const std::string& binary, const std::string& socket,
                                           const std::string& dir) {
  return {binary, "--socket-path=" + socket, "-o", "source=" + dir, "-o", "cache=auto", "-o", "log_level=warn"};
}

// Waits for virtiofsd's socket and connects (retrying the refused connects between its bind()
// and listen()); returns the connected fd.
Result<Fd> wait_and_connect(ChildProcess& child, const std::string& socket, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof addr.sun_path) return fail("socket path too long: " + socket);
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  for (;;) {
    struct stat st {};
    if (::stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!fd) return fail_errno("socket");
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
      if (errno != ECONNREFUSED) return fail_errno("connect " + socket);
    }
    if (child.wait_for(std::chrono::milliseconds(0)))
      return fail("virtiofsd " + describe_status(*child.status()) + " before accepting a connection");
    if (Clock::now() > deadline) return fail("virtiofsd did not accept a connection in time");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// One vhost-user round trip, GET_FEATURES (request 1, version flags 0x1, no payload), and its
// 8-byte reply: the first moment virtiofsd answers. The C virtiofsd sets up its sandbox
// (namespaces, seccomp) after accept() and before it reads a message, so this, not the
// connect, is when a frontend can go on.
Result<void> get_features(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint32_t request[3] = {1, 0x1, 0};
  if (::send(fd, request, sizeof request, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof request))
    return fail_errno("vhost-user GET_FEATURES");
  unsigned char reply[20];
  size_t got = 0;
  while (got < sizeof reply) {
    ssize_t n = ::recv(fd, reply + got, sizeof reply - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("virtiofsd did not answer GET_FEATURES");
    got += static_cast<size_t>(n);
  }
  uint32_t header[3];
  std::memcpy(header, reply, sizeof header);
  if (header[0] != 1 || header[2] != 8) return fail("virtiofsd sent a malformed GET_FEATURES reply");
  return {};
}

// "share benchshare: ready in 4321 us (...)" -> milliseconds.
std::optional<double> parse_share_ready_ms(const std::string& log) {
  std::string needle = std::string("share ") + kTag + ": ready in ";
  size_t at = log.find(needle);
  if (at == std::string::npos) return std::nullopt;
  char* end = nullptr;
  double us = std::strtod(log.c_str() + at + needle.size(), &end);
  if (end == log.c_str() + at + needle.size()) return std::nullopt;
  return us / 1000.0;
}

class FsSetupScenario final : public Scenario {
 public:
  std::string_view name() const override { return "fs_setup"; }
  std::string_view description() const override {
    return "device mode: start-up cost of one --share (virtiofsd spawned, socket up, vhost-user negotiated), and a "
           "whole run with one share of a guest that halts at its first instruction";
  }
  bool device_mode() const override { return true; }
  std::vector<std::string> baselines() const override { return {"host", "qemu"}; }
  std::vector<std::string> notes(const BenchContext&) const override {
    return {
        "share_ready_ms: microvm's own measurement, logged at --log-level info (from starting virtiofsd to a "
        "negotiated vhost-user connection: GET_FEATURES, protocol features, SET_OWNER); host: the harness spawns "
        "the same virtiofsd with the same options, connects as soon as its socket accepts and stops the clock at "
        "the reply to one GET_FEATURES: the earliest moment any frontend can go on (the C virtiofsd builds its "
        "sandbox after accept(), before answering), so microvm/host reads as the frontend's whole overhead. "
        "socket_connected_ms (host only) is the connect() alone.",
        "vm_run_ms: spawn -> exit of `microvm run --share DIR` with a guest that executes one HLT (no guest "
        "kernel, so valid on hosts that emulate guest kernel code), " +
            std::to_string(kMemoryMib) +
            " MiB, 1 vCPU: VMM start-up, share set-up, first KVM_RUN, teardown including stopping virtiofsd. "
            "qemu: the harness starts the same virtiofsd, waits for its socket, then runs qemu-system-x86_64 -M "
            "microvm with a memfd memory backend (share=on) and vhost-user-fs-device on it; the clock starts at "
            "virtiofsd's spawn and stops when QEMU exits (virtiofsd then exits by itself, not waited for).",
        "share_ready_ms and first_kvm_run_ms have no QEMU counterpart (QEMU logs neither)."};
  }
  std::map<std::string, std::string> metric_descriptions() const override {
    return {
        {"share_ready_ms", "virtiofsd spawned -> vhost-user negotiated (microvm) / -> first GET_FEATURES reply (host)"},
        {"socket_connected_ms", "host: virtiofsd spawned -> its socket accepted a connection"},
        {"first_kvm_run_ms", "microvm --boot-timer: main() -> first KVM_RUN, with the share set up before it"},
        {"vm_run_ms", "spawn -> exit of a VM with one share whose guest halts at its first instruction"},
    };
  }

  Result<void> prepare(const BenchContext& ctx) override {
    virtiofsd_ = find_virtiofsd();
    if (virtiofsd_.empty()) return fail("virtiofsd not found (set MICROVM_BENCH_VIRTIOFSD)");
    if (::geteuid() != 0) return fail("virtiofsd needs root (CAP_SYS_ADMIN for its sandbox)");
    share_dir_ = ctx.work_dir + "/" + kTag;
    std::filesystem::create_directories(share_dir_);
    TRY(write_file(share_dir_ + "/hello.txt", "hello\n"));
    halt_elf_ = ctx.work_dir + "/fs-halt.elf";
    TRY(write_file(halt_elf_, make_probe_elf(ProbeKind::kHalt)));
    return {};
  }

  Result<RunOutput> run_once(const BenchContext& ctx, std::string_view variant) override {
    RunOutput out;
    out.details["virtiofsd"] = virtiofsd_;
    if (variant == kSubjectVariant)
      TRY(run_microvm(ctx, out));
    else if (variant == "host")
      TRY(run_host(ctx, out));
    else
      TRY(run_qemu(ctx, out));
    // Let the previous virtiofsd's and VM's teardown finish before the next start.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return out;
  }

 private:
  Result<void> run_microvm(const BenchContext& ctx, RunOutput& out) {
    std::string err_path = ctx.work_dir + "/fs-microvm.err";
    std::vector<std::string> argv = {
        ctx.microvm_binary, "run",      "--kernel",    halt_elf_, "--memory",    std::to_string(kMemoryMib) + "M",
        "--cpus",           "1",        "--cmdline",   "halt",    "--share",     share_dir_,
        "--virtiofsd",      virtiofsd_, "--log-level", "info",    "--boot-timer"};
    auto child = TRY(ChildProcess::spawn(argv, {"", err_path}));
    if (!child.wait_for(std::chrono::seconds(60))) return fail("microvm with a share did not stop within 60 s");
    std::string err = read_file(err_path).value_or("");
    if (exit_code_of(*child.status()) != 0)
      return fail("microvm " + describe_status(*child.status()) + ": " + err.substr(0, 600));
    out.metrics["vm_run_ms"] =
        ms(std::chrono::duration<double, std::milli>(child.exit_time() - child.started()).count());
    auto ready = parse_share_ready_ms(err);
    if (!ready) return fail("microvm did not log the share's set-up time: " + err.substr(0, 600));
    out.metrics["share_ready_ms"] = ms(*ready);
    if (auto first = parse_boot_timer_first_run_ms(err)) out.metrics["first_kvm_run_ms"] = ms(*first);
    out.details["command"] = join(argv);
    return {};
  }

  Result<void> run_host(const BenchContext& ctx, RunOutput& out) {
    std::string dir = ctx.work_dir + "/fs-host";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string socket = dir + "/virtiofsd.sock";
    auto argv = virtiofsd_command(virtiofsd_, socket, share_dir_);
    auto child = TRY(ChildProcess::spawn(argv, {"", ctx.work_dir + "/fs-host.err"}));
    auto fd = wait_and_connect(child, socket, std::chrono::seconds(30));
    if (!fd) return std::unexpected(fd.error());
    double connected = ms_since(child.started());
    TRY(get_features(fd->get()));
    double elapsed = ms_since(child.started());
    out.metrics["socket_connected_ms"] = ms(connected);
    out.metrics["share_ready_ms"] = ms(elapsed);
    out.details["command"] = join(argv);
    fd->reset();  // virtiofsd exits when its one connection closes
    if (!child.wait_for(std::chrono::seconds(5))) stop(child, std::chrono::seconds(1));
    return {};
  }

  Result<void> run_qemu(const BenchContext& ctx, RunOutput& out) {
    std::string dir = ctx.work_dir + "/fs-qemu";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::string socket = dir + "/virtiofsd.sock";
    auto fsd_argv = virtiofsd_command(virtiofsd_, socket, share_dir_);
    auto fsd = TRY(ChildProcess::spawn(fsd_argv, {"", ctx.work_dir + "/fs-qemu-virtiofsd.err"}));
    // Wait for the socket without connecting: virtiofsd serves exactly one connection, QEMU's.
    auto deadline = Clock::now() + std::chrono::seconds(30);
    struct stat st {};
    while (!(::stat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))) {
      if (fsd.wait_for(std::chrono::milliseconds(0))) return fail("virtiofsd " + describe_status(*fsd.status()));
      if (Clock::now() > deadline) return fail("virtiofsd did not create its socket in time");
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    std::string mem = std::to_string(kMemoryMib) + "M";
    std::string err_path = ctx.work_dir + "/fs-qemu.err";
    std::vector<std::string> argv = {ctx.qemu_binary,
                                     "-M",
                                     "microvm,memory-backend=mem",
                                     "-enable-kvm",
                                     "-cpu",
                                     "qemu64,+x2apic,vendor=GenuineIntel",
                                     "-smp",
                                     "1",
                                     "-m",
                                     mem,
                                     "-object",
                                     "memory-backend-memfd,id=mem,size=" + mem + ",share=on",
                                     "-nodefaults",
                                     "-no-user-config",
                                     "-display",
                                     "none",
                                     "-no-reboot",
                                     "-device",
                                     "isa-debug-exit,iobase=0xf4,iosize=0x04",
                                     "-chardev",
                                     "socket,id=fs0,path=" + socket,
                                     "-device",
                                     std::string("vhost-user-fs-device,chardev=fs0,tag=") + kTag,
                                     "-kernel",
                                     halt_elf_};
    // A socket connect may race virtiofsd's listen() right after bind(): retry a few times.
    for (int attempt = 0;; ++attempt) {
      auto qemu = TRY(ChildProcess::spawn(argv, {"", err_path}));
      if (!qemu.wait_for(std::chrono::seconds(60))) return fail("QEMU with a share did not stop within 60 s");
      // isa-debug-exit: (value << 1) | 1 = 1 for the probe's write of 0.
      if (exit_code_of(*qemu.status()) == 1) {
        out.metrics["vm_run_ms"] =
            ms(std::chrono::duration<double, std::milli>(qemu.exit_time() - fsd.started()).count());
        break;
      }
      std::string err = read_file(err_path).value_or("");
      if (attempt < 3 && err.find("Connection refused") != std::string::npos) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      return fail("QEMU " + describe_status(*qemu.status()) + ": " + err.substr(0, 600));
    }
    out.details["command"] = join(fsd_argv) + " & " + join(argv);
    if (!fsd.wait_for(std::chrono::seconds(5))) stop(fsd, std::chrono::seconds(1));
    return {};
  }

  static std::string join(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
  }

  std::string virtiofsd_, share_dir_, halt_elf_;
};

}  // namespace

void register_fs_setup(ScenarioRegistry& registry) { registry.add(std::make_unique<FsSetupScenario>()); }

}  // namespace microvm::bench
