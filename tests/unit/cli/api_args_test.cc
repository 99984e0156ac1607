// `microvm run` options of the REST API: --api-sock, --no-api, --config-file.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/run_command.h"

namespace microvm {
namespace {

Result<RunOptions> parse_args(std::vector<std::string> args) {
  std::vector<const char*> argv{"run"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return parse_run_args(static_cast<int>(argv.size()), argv.data());
}

TEST(ApiArgs, ApiSocketReplacesTheKernelRequirement) {
  auto o = parse_args({"--api-sock", "/tmp/x.sock"});
  ASSERT_TRUE(o) << o.error().what;
  EXPECT_EQ(o->api_sock, "/tmp/x.sock");
  EXPECT_TRUE(o->vm.kernel_path.empty());
  auto both = parse_args({"--api-sock", "/tmp/x.sock", "--kernel", "k", "--cpus", "2"});
  ASSERT_TRUE(both) << both.error().what;
  EXPECT_EQ(both->vm.kernel_path, "k");
  EXPECT_EQ(both->vm.cpus, 2u);
}

TEST(ApiArgs, ConflictsAreUsageErrors) {
  auto r = parse_args({"--api-sock", "/tmp/x.sock", "--no-api"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, EINVAL);
  EXPECT_NE(r.error().what.find("--no-api"), std::string::npos);
  r = parse_args({"--config-file", "vm.json", "--kernel", "k"});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("--config-file"), std::string::npos);
  auto cf = parse_args({"--config-file", "vm.json"});
  ASSERT_TRUE(cf) << cf.error().what;
  EXPECT_EQ(cf->config_file, "vm.json");
}

TEST(ApiArgs, MissingConfigFileNamesIt) {
  auto o = parse_args({"--config-file", "/nonexistent/vm.json"});
  ASSERT_TRUE(o);
  auto r = apply_config_file(*o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("/nonexistent/vm.json"), std::string::npos) << r.error().what;
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST(ApiArgs, MetricsPathNeedsTheApiSocket) {
  std::vector<const char*> without{"run", "--kernel", "k", "--metrics-path", "/tmp/m"};
  auto o = parse_run_args(static_cast<int>(without.size()), without.data());
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().what.find("--metrics-path needs --api-sock"), std::string::npos) << o.error().what;
  std::vector<const char*> with{"run", "--api-sock", "/tmp/s", "--metrics-path", "/tmp/m"};
  auto ok = parse_run_args(static_cast<int>(with.size()), with.data());
  ASSERT_TRUE(ok) << ok.error().what;
  EXPECT_EQ(ok->metrics_path, "/tmp/m");
}

}  // namespace
}  // namespace microvm
