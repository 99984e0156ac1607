// `microvm --version` names the version set in CMake's project(), the git revision of the
// checkout it was built from, and the compiled-in features.
#include <gtest/gtest.h>

#include <string>

#include "support/vm_process.h"

namespace microvm::testing {
namespace {

void expect_version_text(const VmRunResult& r) {
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const std::string head = std::string("microvm ") + MICROVM_PROJECT_VERSION + " (git ";
  ASSERT_EQ(r.out.rfind(head, 0), 0u) << r.describe();
  auto close = r.out.find(')', head.size());
  ASSERT_NE(close, std::string::npos) << r.describe();
  std::string rev = r.out.substr(head.size(), close - head.size());
  EXPECT_FALSE(rev.empty());
  // The tests build from a git checkout, so the revision is known.
  EXPECT_NE(rev, "unknown") << r.describe();
  EXPECT_NE(r.out.find("\nfeatures: io_uring seccomp"), std::string::npos) << r.describe();
}

TEST(CliVersion, LongOptionPrintsVersionRevisionAndFeatures) { expect_version_text(run_microvm({"--version"})); }

TEST(CliVersion, VersionCommandPrintsTheSame) {
  auto a = run_microvm({"version"});
  auto b = run_microvm({"--version"});
  expect_version_text(a);
  EXPECT_EQ(a.out, b.out);
}

}  // namespace
}  // namespace microvm::testing
