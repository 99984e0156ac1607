#include "cli/img/img_command.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "cli/img/img_internal.h"

namespace {

// One line per subcommand, "  NAME ...": `microvm img NAME --help` prints that line.
const char kUsage[] =
    "usage: microvm img COMMAND [options]   (COMMAND --help: that command's usage)\n"
    "  create -f raw|qcow2 [-b BACKING -F FMT] [-o "
    "cluster_size=N,compat=0.10|1.1,refcount_bits=N,lazy_refcounts=on|off,compression_type=zlib|zstd,preallocation=off|"
    "metadata|falloc|full] FILE [SIZE]\n"
    "  info [-f FMT] [--json|--output=json] [--backing-chain] FILE\n"
    "      --backing-chain: the image and each of its backing files (JSON: a list)\n"
    "  check [-f FMT] [-r leaks|all] [--json|--output=json] FILE   exit: 0 clean, 1 check failed,\n"
    "        2 corruptions (or bad arguments), 3 leaks only, 63 format without checks (raw)\n"
    "      -r leaks: repair leaked clusters; -r all: also refcounts that are too low\n"
    "  resize [-f FMT] [--shrink] FILE [+|-]SIZE\n"
    "  convert [-f FMT] -O raw|qcow2 [-o cluster_size=N,...] [-B BACKING -F FMT] [-c] [-n] [-p] IN OUT\n"
    "  map [-f FMT] [--output=human|json] [--start-offset=N] [--max-length=N] FILE   allocation, per chain level\n"
    "  compare [-f FMT] [-F FMT] [-s] [-p] [-q] FILE1 FILE2   exit: 0 identical, 1 differ, 2 cannot open\n"
    "  commit [-f FMT] [-d] [-p] [-q] FILE   write the overlay into its backing file, then empty it (-d: keep)\n"
    "  rebase [-f FMT] [-u] [-p] [-q] -b NEW [-F FMT] FILE   change the backing file (-u: only the header)\n"
    "  measure [--output=json] [-O raw|qcow2] [-o cluster_size=N,...] (--size N | [-f FMT] FILE)   size of a new "
    "image\n"
    "  amend [-f qcow2] -o compat=0.10|1.1,lazy_refcounts=on|off FILE   change the qcow2 version or flags in place\n"
    "  dd [-f FMT] [-O raw|qcow2] [bs=N] [count=N] [skip=N] if=IN of=OUT   copy a range of IN into a new image\n"
    "  snapshot -l|-c NAME|-a NAME|-d NAME [-f FMT] [-U] FILE   list, create, apply (ID or name), delete internal "
    "snapshots\n"
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

// Options that select a separate implementation file (info --backing-chain, check -r).
bool has_arg(int argc, char** argv, const char* opt) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) return false;
    if (std::strcmp(argv[i], opt) == 0) return true;
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
  if (cmd == "info" && has_arg(sub_argc, sub_argv, "--backing-chain")) return cmd_info_chain(sub_argc, sub_argv);
  if (cmd == "info") return cmd_info(sub_argc, sub_argv);
  if (cmd == "check" && has_arg(sub_argc, sub_argv, "-r")) return cmd_check_repair(sub_argc, sub_argv);
  if (cmd == "check") return cmd_check(sub_argc, sub_argv);
  if (cmd == "resize") return cmd_resize(sub_argc, sub_argv);
  if (cmd == "convert") return cmd_convert(sub_argc, sub_argv);
  if (cmd == "map") return cmd_map(sub_argc, sub_argv);
  if (cmd == "compare") return cmd_compare(sub_argc, sub_argv);
  if (cmd == "commit") return cmd_commit(sub_argc, sub_argv);
  if (cmd == "rebase") return cmd_rebase(sub_argc, sub_argv);
  if (cmd == "measure") return cmd_measure(sub_argc, sub_argv);
  if (cmd == "amend") return cmd_amend(sub_argc, sub_argv);
  if (cmd == "dd") return cmd_dd(sub_argc, sub_argv);
  if (cmd == "snapshot") return cmd_snapshot(sub_argc, sub_argv);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return 0;
  }
  print_error("unknown command '" + cmd + "'");
  usage(stderr);
  return kExitUsage;
}
