#include "bench/blk_device/fio_runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <nlohmann/json.hpp>

#include "base/fd.h"

extern char** environ;

namespace microvm::blkbench {

std::vector<std::string> fio_command(const std::string& fio, const std::string& path, double seconds,
                                     const Workload& w) {
  const char* rw = w.pattern == Pattern::kRandom ? (w.write ? "randwrite" : "randread") : (w.write ? "write" : "read");
  // fio's runtime is whole seconds; at least 1.
  long secs = std::max(1l, static_cast<long>(seconds + 0.5));  // rounded (no libm in microvm)
  return {fio,
          "--name=" + w.name,
          "--filename=" + path,
          "--ioengine=io_uring",
          "--direct=1",
          std::string("--rw=") + rw,
          "--bs=" + std::to_string(w.block_bytes),
          "--iodepth=" + std::to_string(w.queue_depth),
          "--runtime=" + std::to_string(secs),
          "--time_based",
          "--output-format=json"};
}

Result<std::string> run_capture(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe");
  Fd rd(p[0]), wr(p[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, wr.get(), STDOUT_FILENO);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // posix_spawn does not write them
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return fail_errno(rc, "spawn " + argv[0]);
  wr.reset();
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(rd.get(), buf, sizeof buf);
    if (n > 0)
      out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return fail(EIO, argv[0] + " failed (status " + std::to_string(status) + ")");
  return out;
}

Result<RunResult> run_fio(const std::string& fio, const std::string& path, double seconds, const Workload& w) {
  std::string out = TRY(run_capture(fio_command(fio, path, seconds, w)));
  // fio may print notices before the JSON object.
  auto start = out.find('{');
  if (start == std::string::npos) return fail(EPROTO, "fio printed no JSON");
  auto j = nlohmann::json::parse(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), nullptr, false);
  if (j.is_discarded() || !j.contains("jobs") || j["jobs"].empty()) return fail(EPROTO, "fio JSON without jobs");
  const auto& side = j["jobs"][0][w.write ? "write" : "read"];
  if (!side.is_object()) return fail(EPROTO, "fio JSON without the job's read/write section");
  RunResult r;
  r.bytes = side.value("io_bytes", uint64_t{0});
  r.ops = side.value("total_ios", uint64_t{0});
  r.seconds = side.value("runtime", 0.0) / 1000.0;  // ms
  if (r.ops == 0 || r.seconds <= 0) return fail(EPROTO, "fio reported no I/O");
  return r;
}

}  // namespace microvm::blkbench
