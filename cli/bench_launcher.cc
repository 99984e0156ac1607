#include "cli/bench_launcher.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "microvm/vm.h"

namespace microvm {
namespace {

constexpr char kTool[] = "microvm-bench";

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.find_last_of('/'));
}

}  // namespace

int exec_bench_tool(int argc, char** argv) {
  std::string dir = self_dir();
  if (dir.empty()) {
    std::fprintf(stderr, "microvm bench: cannot find this executable (/proc/self/exe): %s\n", std::strerror(errno));
    return kExitError;
  }
  // Not PATH: `microvm bench` measures with the tool built or installed with this microvm.
  const std::string candidates[] = {dir + "/" + kTool, dir + "/bench/" + kTool};
  std::vector<char*> args;
  args.push_back(const_cast<char*>(kTool));
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  for (const auto& path : candidates) {
    ::execv(path.c_str(), args.data());
    if (errno != ENOENT) {  // there, but not runnable: say so rather than look further
      std::fprintf(stderr, "microvm bench: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
      return kExitError;
    }
  }
  std::fprintf(stderr,
               "microvm bench: the benchmark tool is not installed (no %s or %s); install the microvm-bench "
               "package, or build the microvm-bench target\n",
               candidates[0].c_str(), candidates[1].c_str());
  return kExitError;
}

}  // namespace microvm
