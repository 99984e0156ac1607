// Every `microvm img` argument error is exit code 2 with a message on stderr, like `run`'s
// (README "Exit codes"; issue #19 found some at 1): one case per subcommand's usual
// mistakes, against the real binary. Nothing here needs KVM.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

struct ImgArgs {
  std::string name;
  std::vector<std::string> args;  // "@" stands for an existing 1 MiB raw image, "#" for a new path
};

class CliImgArgs : public ::testing::TestWithParam<ImgArgs> {};

TEST_P(CliImgArgs, ExitTwoWithAMessage) {
  TempDir dir;
  std::string image = dir.path() + "/a.raw";
  {
    std::ofstream f(image, std::ios::binary);
    f.seekp((1 << 20) - 1);
    f.put('\0');
  }
  std::vector<std::string> args = {"img"};
  for (const auto& a : GetParam().args) args.push_back(a == "@" ? image : a == "#" ? dir.path() + "/new" : a);
  VmRunResult r = run_microvm(args, {.timeout = std::chrono::seconds(30)});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_FALSE(r.err.empty()) << r.describe();
}

INSTANTIATE_TEST_SUITE_P(
    Each, CliImgArgs,
    ::testing::Values(
        ImgArgs{"NoSubcommand", {}}, ImgArgs{"UnknownSubcommand", {"frobnicate"}}, ImgArgs{"CreateNothing", {"create"}},
        ImgArgs{"CreateUnknownFormat", {"create", "-f", "vmdk", "#", "1M"}},
        ImgArgs{"CreateNoSize", {"create", "-f", "raw", "#"}},
        ImgArgs{"CreateBadSize", {"create", "-f", "raw", "#", "1Q"}}, ImgArgs{"ConvertNothing", {"convert"}},
        ImgArgs{"ConvertUnknownFormat", {"convert", "-O", "vmdk", "@", "#"}},
        ImgArgs{"ConvertNoOutput", {"convert", "-f", "raw", "@"}}, ImgArgs{"ResizeNothing", {"resize"}},
        ImgArgs{"ResizeNoSize", {"resize", "-f", "raw", "@"}},
        ImgArgs{"ResizeBadSize", {"resize", "-f", "raw", "@", "1Q"}}, ImgArgs{"CommitNothing", {"commit"}},
        ImgArgs{"RebaseNoBacking", {"rebase", "-f", "raw", "@"}}, ImgArgs{"DdNothing", {"dd"}},
        ImgArgs{"SnapshotNothing", {"snapshot"}}, ImgArgs{"SnapshotUnknownFlag", {"snapshot", "-z", "@"}},
        ImgArgs{"InfoNothing", {"info"}}, ImgArgs{"InfoUnknownFormat", {"info", "-f", "vmdk", "@"}},
        ImgArgs{"InfoUnknownOption", {"info", "--nosuch", "@"}}, ImgArgs{"CheckNothing", {"check"}},
        ImgArgs{"MapNothing", {"map"}}, ImgArgs{"CompareOneImage", {"compare", "@"}},
        ImgArgs{"MeasureNothing", {"measure"}}, ImgArgs{"AmendNoOptions", {"amend", "@"}}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace microvm::testing
