// microvm: run | ctl | img | bench (the separate microvm-bench tool)
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "cli/bench_launcher.h"
#include "cli/ctl_command.h"
#include "cli/qemu_args.h"
#include "cli/run_command.h"
#include "cli/version.h"
#ifdef MICROVM_HAVE_IMG
#include "cli/img/img_command.h"
#endif

namespace {

constexpr char kUsage[] =
    "usage: microvm <command> [options]\n"
    "\n"
    "commands:\n"
    "  run     boot a Linux guest (microvm run --help)\n"
    "  ctl     talk to a VM started with 'run --api-sock' (microvm ctl --help)\n"
    "  snapshot --api-sock PATH create DIR   snapshot a running VM (as 'microvm ctl snapshot DIR')\n"
    "  img     create, inspect, check, resize and convert raw/qcow2 disk images\n"
    "  bench   measure start-up, memory overhead and virtio throughput (microvm bench --help;\n"
    "          runs the microvm-bench tool)\n"
    "  version version, git revision and compiled-in features (also --version)\n"
    "  help    this text\n"
    "\n"
    "exit codes of 'run': 0 guest powered off, 1 error, 2 bad arguments, 3 guest rebooted,\n"
    "                     4 guest crashed, 5 stopped (C-a x or a signal),\n"
    "                     6 a sandboxed thread made a forbidden system call,\n"
    "                     7 the guest kernel panicked (--pvpanic)\n";

}  // namespace

int main(int argc, char** argv) {
  // glibc's malloc opens files lazily, the first time it needs them, on whichever thread that
  // happens: /sys/devices/system/cpu/online to size the arena limit (a thread wanting a new
  // arena once eight exist) and /proc/sys/vm/overcommit_memory when it first shrinks a
  // thread arena's heap (a free() that leaves a large top). Under the seccomp filters that
  // openat ends the VM with SIGSYS: seen in the event loop after a 16 MiB vsock transfer and
  // in the supervisor freeing device buffers at tear-down. Fixing the arena limit and a trim
  // threshold above a thread heap's 64 MiB, before any thread starts, means glibc never asks.
  // (Blocks of 128 KiB and more then always come from mmap and go back with munmap.)
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  ::mallopt(M_ARENA_MAX, static_cast<int>(std::min(8u * cpus, 64u)));
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  ::mallopt(M_MMAP_THRESHOLD, 128 << 10);
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const char* cmd = argv[1];
  // `microvm -kernel vmlinux -m 1G ...`, typed from QEMU habit: that is `microvm run`.
  if (microvm::is_qemu_option(cmd)) {
    std::vector<char*> args(argv, argv + argc);
    static char run[] = "run";
    args[0] = run;
    return microvm::run_command(argc, args.data());
  }
  if (!std::strcmp(cmd, "run")) return microvm::run_command(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "ctl")) return microvm::ctl_command(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "snapshot")) {
    // `microvm snapshot --api-sock S create DIR` is `microvm ctl --api-sock S snapshot DIR`.
    std::vector<char*> args{const_cast<char*>("ctl")};
    bool have_create = false;
    static char kSnapshot[] = "snapshot";
    for (int i = 2; i < argc; ++i) {
      if (!have_create && !std::strcmp(argv[i], "create")) {
        args.push_back(kSnapshot);
        have_create = true;
      } else {
        args.push_back(argv[i]);
      }
    }
    if (!have_create) {
      std::fputs("usage: microvm snapshot --api-sock PATH create DIR [--keep-paused]\n", stderr);
      return 2;
    }
    return microvm::ctl_command(static_cast<int>(args.size()), args.data());
  }
#ifdef MICROVM_HAVE_IMG
  if (!std::strcmp(cmd, "img")) return ::run_img_command(argc - 1, argv + 1);
#endif
  if (!std::strcmp(cmd, "bench")) return microvm::exec_bench_tool(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "version") || !std::strcmp(cmd, "--version") || !std::strcmp(cmd, "-V")) {
    microvm::print_version(stdout);
    return 0;
  }
  if (!std::strcmp(cmd, "help") || !std::strcmp(cmd, "--help") || !std::strcmp(cmd, "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "microvm: unknown command '%s'\n\n%s", cmd, kUsage);
  return 2;
}
