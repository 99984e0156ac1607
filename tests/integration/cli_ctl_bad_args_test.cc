// `microvm ctl` with a mistyped command or option: exit code 2 and a message that names the
// mistake and the nearest command or option, before any request is sent (no VM is needed:
// the socket does not exist, and a message about connecting would mean the check came late).
#include <gtest/gtest.h>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

VmRunResult ctl(std::vector<std::string> args) {
  args.insert(args.begin(), "ctl");
  return run_process(microvm_binary(), args, {.timeout = std::chrono::seconds(30)});
}

TEST(CliCtlBadArgs, UnknownCommandExitsTwoWithAHint) {
  auto r = ctl({"--api-sock", "/nonexistent/vm.sock", "paus"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("microvm ctl: unknown command 'paus'; did you mean 'pause'?"), std::string::npos)
      << r.describe();
  EXPECT_NE(r.err.find("Commands: info, pause, resume"), std::string::npos) << r.describe();
  EXPECT_EQ(r.err.find("not expected"), std::string::npos) << "CLI11's raw text: " << r.describe();
}

TEST(CliCtlBadArgs, UnknownOptionExitsTwoWithAHint) {
  auto r = ctl({"--api-sock", "/nonexistent/vm.sock", "snapshot", "/tmp/x", "--keep-pasued"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("unknown option '--keep-pasued' for 'microvm ctl snapshot'; did you mean '--keep-paused'?"),
            std::string::npos)
      << r.describe();
}

TEST(CliCtlBadArgs, NoCommandOrNoSocketExitTwo) {
  auto r = ctl({"--api-sock", "/nonexistent/vm.sock"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("which command? One of: info"), std::string::npos) << r.describe();
  r = ctl({"pause"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("--api-sock PATH is required"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
