#pragma once
// A `microvm run --api-sock ...` running in the background for API tests, and curl over
// its Unix socket (the same tool a user would use, as the README shows).
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {

struct CurlReply {
  int status = 0;  // 0 when curl itself failed
  std::string body;
};

class ApiVm {
 public:
  // Starts `microvm run --api-sock <dir>/api.sock <extra...>` with stdin from /dev/null and
  // waits (up to 10 s) for the socket to appear. `wrapper` (an absolute path and its
  // arguments, e.g. unshare --net) execs microvm in place, so pid() stays microvm's.
  explicit ApiVm(std::vector<std::string> extra = {}, std::vector<std::string> wrapper = {});
  ~ApiVm();  // SIGKILLs the process if it still runs
  ApiVm(const ApiVm&) = delete;
  ApiVm& operator=(const ApiVm&) = delete;

  const std::string& socket() const { return socket_; }
  bool socket_ready() const { return ready_; }
  CurlReply curl(const std::string& method, const std::string& path, const std::string& body = "") const;
  // The exit code once the process ended within `seconds`, else nullopt.
  std::optional<int> wait_exit(int seconds);
  // True once stdout holds `text`, polled for up to `seconds` (the default allows for a guest
  // whose kernel mode is emulated).
  bool wait_for_output(const std::string& text, int seconds = 90) const;
  std::string out() const { return read_text_file(dir_.path() + "/out"); }
  std::string err() const { return read_text_file(dir_.path() + "/err"); }
  std::string describe() const { return "stdout:\n" + out() + "\nstderr:\n" + err(); }
  const TempDir& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  // The VMM's own process: the launcher's jailed child when microvm jails itself (the
  // default as root), else pid().
  pid_t vmm_pid() const;

 private:
  TempDir dir_;
  std::string socket_;
  pid_t pid_ = -1;
  bool ready_ = false;
  std::optional<int> exit_;
};

// "fault_message" of a JSON error body, or "" when absent.
std::string fault_message(const std::string& body);

}  // namespace microvm::testing
