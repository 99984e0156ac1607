// Embedding microvm: runs one or more VMs in this process through the public API only.
//
//   embed_example --kernel K [--initrd I] [--cmdline C] [--cpus N] [--memory-mib M] [--vms N]
//                 [--disk FORMAT:PATH]...
//
// Each --disk (FORMAT raw or qcow2) is attached read-only to every VM, so they can share it.
// Each VM's serial console goes to a pipe that a thread copies to stdout, prefixing every
// line with "vm<i>: ", and each VM logs through its own sink. Exit status: 0 when every VM
// powered off, 1 otherwise.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "microvm/vm.h"

namespace {

std::mutex g_stdout_mutex;  // this example's own output, shared by its threads

void copy_console(int fd, int index) {
  std::string line;
  char buf[512];
  ssize_t n;
  auto flush = [&] {
    std::lock_guard lock(g_stdout_mutex);
    std::printf("vm%d: %s\n", index, line.c_str());
    std::fflush(stdout);
    line.clear();
  };
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\n')
        flush();
      else if (buf[i] != '\r')
        line += buf[i];
    }
  }
  if (!line.empty()) flush();
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  microvm::VmConfig base;
  base.rng = false;
  int vms = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string opt = argv[i];
    const char* val = argv[i + 1];
    if (opt == "--kernel")
      base.kernel_path = val;
    else if (opt == "--initrd")
      base.initrd_path = val;
    else if (opt == "--cmdline")
      base.cmdline = val;
    else if (opt == "--cpus")
      base.cpus = static_cast<unsigned>(std::atoi(val));
    else if (opt == "--memory-mib")
      base.memory_bytes = std::strtoull(val, nullptr, 10) << 20;
    else if (opt == "--vms")
      vms = std::atoi(val);
    else if (opt == "--disk") {
      // The format's name becomes microvm::DiskFormat here, where the text arrives.
      std::string spec = val;
      auto colon = spec.find(':');
      auto format = microvm::disk_format_from_string(spec.substr(0, colon));
      if (colon == std::string::npos || !format) {
        std::fprintf(stderr, "embed_example: --disk %s: expected raw:PATH or qcow2:PATH\n", val);
        return 2;
      }
      base.disks.push_back({.path = spec.substr(colon + 1), .format = *format, .read_only = true});
    } else {
      std::fprintf(stderr, "embed_example: unknown option %s\n", opt.c_str());
      return 2;
    }
  }
  if (base.kernel_path.empty() || vms < 1) {
    std::fprintf(stderr,
                 "usage: embed_example --kernel K [--initrd I] [--cmdline C] [--cpus N] [--memory-mib M] [--vms N]\n"
                 "                     [--disk FORMAT:PATH]...\n");
    return 2;
  }

  std::vector<std::unique_ptr<microvm::Vm>> machines;
  std::vector<std::thread> consoles;
  std::vector<int> console_writers;  // the VMs write here; closed once the VMs are gone
  for (int i = 0; i < vms; ++i) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return 1;
    microvm::VmConfig config = base;
    config.console_in = -1;
    config.console_out = pipefd[1];
    config.log_sink = [i](microvm::LogLevel level, std::string_view msg) {
      std::lock_guard lock(g_stdout_mutex);
      std::fprintf(stderr, "vm%d log(%d): %.*s\n", i, static_cast<int>(level), static_cast<int>(msg.size()),
                   msg.data());
    };
    auto vm = microvm::Vm::create(config);
    if (!vm) {
      std::fprintf(stderr, "vm%d: %s\n", i, vm.error().what.c_str());
      return 1;
    }
    machines.push_back(std::move(*vm));
    consoles.emplace_back(copy_console, pipefd[0], i);
    console_writers.push_back(pipefd[1]);
  }

  // Each VM runs on its own thread; run() returns when the guest stops.
  std::vector<microvm::VmExitReason> reasons(vms, microvm::VmExitReason::kStopped);
  std::vector<std::thread> runners;
  for (int i = 0; i < vms; ++i) {
    runners.emplace_back([&, i] {
      auto exit = machines[i]->run();
      if (!exit) {
        std::lock_guard lock(g_stdout_mutex);
        std::fprintf(stderr, "vm%d: %s\n", i, exit.error().what.c_str());
        return;
      }
      reasons[i] = exit->reason;
    });
  }
  for (auto& t : runners) t.join();
  machines.clear();
  for (int fd : console_writers) ::close(fd);  // the copy threads then see EOF
  for (auto& t : consoles) t.join();

  int status = 0;
  for (int i = 0; i < vms; ++i) {
    bool ok = reasons[i] == microvm::VmExitReason::kPowerOff;
    std::printf("vm%d: exit %s\n", i, ok ? "poweroff" : "not poweroff");
    if (!ok) status = 1;
  }
  return status;
}
