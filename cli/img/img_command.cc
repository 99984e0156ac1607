#include "cli/img/img_command.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "cli/img/img_internal.h"

namespace {

// One line per subcommand, "  NAME ...": `microvm img NAME --help` prints that line.
const char kUsage[] =
    "usage: microvm img COMMAND [options]   (COMMAND --help: that command's usage)\n"
    "  create -f raw|qcow2 [-b BACKING -F FMT] [-o cluster_size=N,compat=0.10|1.1,refcount_bits=N] FILE [SIZE]\n"
    "  info [-f FMT] [--json|--output=json] FILE\n"
    "  check [-f FMT] [--json|--output=json] FILE   exit: 0 clean, 1 check failed, 2 corruptions (or bad arguments),\n"
    "        3 leaks only, 63 format without checks (raw)\n"
    "  resize [-f FMT] [--shrink] FILE [+|-]SIZE\n"
    "  convert [-f FMT] -O raw|qcow2 [-o cluster_size=N,...] [-p] IN OUT\n"
    "sizes: 512, 64k, 10G, 1.5T, 1P (binary units)\n"
    "exit: 0 done, 1 failed (nothing was changed when create/convert fail), 2 bad arguments\n";

void usage(FILE* out) { std::fputs(kUsage, out); }

// Prints "usage: microvm img CMD ..." from CMD's line of kUsage; false when there is none.
bool command_usage(const std::string& cmd) {
  std::string all = kUsage, key = "\n  " + cmd + " ";
  auto at = all.find(key);
  if (at == std::string::npos) return false;
  auto end = all.find('\n', at + 1);
  std::printf("usage: microvm img %s\n", all.substr(at + 3, end - at - 3).c_str());
  // Continuation lines (deeper indent), then the notes shared by every command.
  while (end + 1 < all.size() && all.compare(end + 1, 4, "    ") == 0) {
    auto next = all.find('\n', end + 1);
    std::printf("%s\n", all.substr(end + 1, next - end - 1).c_str());
    end = next;
  }
  std::fputs(all.c_str() + all.find("\nsizes:") + 1, stdout);
  return true;
}

bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--") return false;
    if (s == "--help" || s == "-h") return true;
  }
  return false;
}

}  // namespace

int run_img_command(int argc, char** argv) {
  using namespace microvm::img;
  if (argc < 2) {
    usage(stderr);
    return kExitUsage;
  }
  std::string cmd = argv[1];
  // Subcommands see argv[0] = their own name.
  int sub_argc = argc - 1;
  char** sub_argv = argv + 1;
  if (wants_help(sub_argc, sub_argv) && command_usage(cmd)) return 0;
  if (cmd == "create") return cmd_create(sub_argc, sub_argv);
  if (cmd == "info") return cmd_info(sub_argc, sub_argv);
  if (cmd == "check") return cmd_check(sub_argc, sub_argv);
  if (cmd == "resize") return cmd_resize(sub_argc, sub_argv);
  if (cmd == "convert") return cmd_convert(sub_argc, sub_argv);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return 0;
  }
  print_error("unknown command '" + cmd + "'");
  usage(stderr);
  return kExitUsage;
}
