#include "cli/ctl_usage_error.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

CtlSyntax syntax() {
  CtlSyntax s;
  s.commands = {"info", "pause", "resume", "snapshot", "rate-limit"};
  s.global_options = {"--api-sock", "--json", "--help", "-h"};
  s.command_options["snapshot"] = {"--keep-paused"};
  s.command_options["rate-limit"] = {"--bandwidth", "--ops"};
  return s;
}

std::string error_for(std::vector<std::string> args) { return ctl_usage_error(args, syntax(), "CLI11 TEXT"); }

TEST(NearestWord, TyposPrefixesAndNothingClose) {
  std::vector<std::string> known = {"info", "pause", "resume", "snapshot"};
  EXPECT_EQ(nearest_word("paus", known), "pause");
  EXPECT_EQ(nearest_word("pasue", known), "pause");
  EXPECT_EQ(nearest_word("snap", known), "snapshot");
  EXPECT_EQ(nearest_word("resum", known), "resume");
  EXPECT_EQ(nearest_word("reboot", known), "");
  EXPECT_EQ(nearest_word("", known), "");
}

TEST(CtlUsageError, UnknownCommandNamesItAndTheNearestOne) {
  auto msg = error_for({"--api-sock", "/run/vm.sock", "paus"});
  EXPECT_NE(msg.find("unknown command 'paus'; did you mean 'pause'?"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Commands: info, pause, resume, snapshot, rate-limit."), std::string::npos) << msg;
  EXPECT_NE(msg.find("microvm ctl --help"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("CLI11 TEXT"), std::string::npos) << msg;
  // The socket path is --api-sock's value, not the command, even when it looks like a word.
  msg = error_for({"--api-sock", "sock", "reboot"});
  EXPECT_NE(msg.find("unknown command 'reboot'\n"), std::string::npos) << msg;
}

TEST(CtlUsageError, UnknownOptionNamesItTheCommandAndTheNearestOption) {
  auto msg = error_for({"--api-sock", "s", "snapshot", "dir", "--keep-pasued"});
  EXPECT_NE(msg.find("unknown option '--keep-pasued' for 'microvm ctl snapshot'; did you mean '--keep-paused'?"),
            std::string::npos)
      << msg;
  // Another command's option is not offered.
  msg = error_for({"--api-sock", "s", "pause", "--keep-paused"});
  EXPECT_NE(msg.find("unknown option '--keep-paused' for 'microvm ctl pause'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
  msg = error_for({"--api-sock=s", "--jsno", "info"});
  EXPECT_NE(msg.find("unknown option '--jsno' for 'microvm ctl info'; did you mean '--json'?"), std::string::npos)
      << msg;
}

TEST(CtlUsageError, MissingCommandOrSocket) {
  auto msg = error_for({"--api-sock", "s"});
  EXPECT_NE(msg.find("which command? One of: info, pause"), std::string::npos) << msg;
  msg = error_for({"pause"});
  EXPECT_NE(msg.find("--api-sock PATH is required"), std::string::npos) << msg;
}

TEST(CtlUsageError, OtherMistakesKeepCliElevensTextWithTheHint) {
  auto msg = error_for({"--api-sock", "s", "rate-limit", "disk", "d0"});
  EXPECT_NE(msg.find("CLI11 TEXT\nRun 'microvm ctl --help'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace microvm
