// PATCH /drives/ID: refused before start and for bodies it cannot honour; after start the
// launcher gets the drive, path and format, its error becomes the fault message, and
// GET /vm/config shows the new path after a swap.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/controller.h"
#include "api/router.h"
#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using json = nlohmann::json;

class SwapLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return {}; }
  void stop() override {}
  Result<void> swap_disk(const std::string& id, const std::string& path, const std::string& format) override {
    ++calls;
    last_id = id, last_path = path, last_format = format;
    if (path.ends_with("locked.img")) return fail(EAGAIN, "disk " + path + ": locked by process 42");
    return {};
  }
  int calls = 0;
  std::string last_id, last_path, last_format;
};

class DrivePatchHandlersTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  std::string message(const HttpResponse& r) { return json::parse(r.body)["fault_message"].get<std::string>(); }
  void configure() {
    ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
    ASSERT_EQ(call("PUT", "/drives/rootfs",
                   json{{"drive_id", "rootfs"}, {"path_on_host", disk.path()}, {"is_root_device", true}}.dump())
                  .status,
              204);
  }
  void start() { ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204); }
  testing::ScratchFile kernel{"kernel"};
  testing::ScratchFile disk{"disk"};
  SwapLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"id", "1.0"}, launcher};
};

TEST_F(DrivePatchHandlersTest, BeforeStartItPointsAtPut) {
  configure();
  auto r = call("PATCH", "/drives/rootfs", json{{"drive_id", "rootfs"}, {"path_on_host", "/x.img"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("before InstanceStart use PUT /drives/rootfs"), std::string::npos) << r.body;
  EXPECT_EQ(launcher.calls, 0);
}

TEST_F(DrivePatchHandlersTest, BodiesItCannotHonourAreRefusedBeforeTheLauncher) {
  configure();
  start();
  struct Case {
    std::string body, says;
  } cases[] = {
      {R"({"drive_id": "other", "path_on_host": "/x.img"})", "must match"},
      {R"({"path_on_host": "/x.img"})", "must match"},
      {R"({"drive_id": "rootfs"})", "path_on_host is required"},
      {R"({"drive_id": "rootfs", "path_on_host": ""})", "path is empty"},
      {R"({"drive_id": "rootfs", "path_on_host": 7})", "path_on_host"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img", "is_read_only": true})", "is_read_only"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img", "x-microvm-format": "vmdk"})", "x-microvm-format"},
      {R"({"drive_id": "rootfs", "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}})", "rate_limiter"},
      {R"({"drive_id": "rootfs", "path_on_host": "/x.img")", ""},
  };
  for (const auto& c : cases) {
    auto r = call("PATCH", "/drives/rootfs", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_NE(message(r).find(c.says), std::string::npos) << c.body << " -> " << r.body;
  }
  EXPECT_EQ(launcher.calls, 0);
}

TEST_F(DrivePatchHandlersTest, SwapGoesToTheLauncherAndShowsInVmConfig) {
  configure();
  start();
  auto r = call("PATCH", "/drives/rootfs",
                json{{"drive_id", "rootfs"}, {"path_on_host", "/new.qcow2"}, {"x-microvm-format", "qcow2"}}.dump());
  ASSERT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(launcher.last_id, "rootfs");
  EXPECT_EQ(launcher.last_path, "/new.qcow2");
  EXPECT_EQ(launcher.last_format, "qcow2");
  auto cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["path_on_host"], "/new.qcow2");

  r = call("PATCH", "/drives/rootfs", json{{"drive_id", "rootfs"}, {"path_on_host", "/locked.img"}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(message(r).find("locked by process 42"), std::string::npos) << r.body;
  cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["drives"][0]["path_on_host"], "/new.qcow2") << "a refused swap changes nothing";
  // A drive the API never configured (a --disk of the command line) is the launcher's to find.
  r = call("PATCH", "/drives/drive0", json{{"drive_id", "drive0"}, {"path_on_host", "/d.img"}}.dump());
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(launcher.last_format, "");
}

}  // namespace
}  // namespace microvm::api
