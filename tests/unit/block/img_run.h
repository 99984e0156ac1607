#pragma once
// Runs `microvm img` in-process and captures what it prints on stdout, so its output can be
// compared with qemu-img's byte for byte.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/img/img_command.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm::testing_block {

// `microvm img ARGS...` in-process; its output goes where this process's does.
inline int img(std::vector<std::string> args) {
  args.insert(args.begin(), "img");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return run_img_command(static_cast<int>(argv.size()), argv.data());
}

inline int img_run(std::vector<std::string> args, std::string* out = nullptr) {
  args.insert(args.begin(), "img");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::fflush(stdout);
  char tmpl[] = "/tmp/img_run_XXXXXX";
  int tmp = ::mkstemp(tmpl);
  if (tmp < 0) return -1;
  ::unlink(tmpl);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(tmp, STDOUT_FILENO);
  int rc = run_img_command(static_cast<int>(argv.size()), argv.data());
  std::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  if (out) {
    out->clear();
    char buf[4096];
    ssize_t n;
    off_t pos = 0;
    while ((n = ::pread(tmp, buf, sizeof buf, pos)) > 0) {
      out->append(buf, static_cast<size_t>(n));
      pos += n;
    }
  }
  ::close(tmp);
  return rc;
}

// qemu-img's stdout only (its messages on stderr are not part of the compared output).
inline int qemu_img_stdout(const std::string& args, std::string* out) {
  return run("qemu-img " + args + " 2>/dev/null", out);
}

}  // namespace microvm::testing_block
