// PUT /vsock: Firecracker's body configures the one vsock device before start; bad bodies
// are refused whole, and the device cannot change once the guest runs.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/config_file.h"
#include "api/controller.h"
#include "api/router.h"
#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

using json = nlohmann::json;

class RecordingLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig& config) override {
    started = config;
    return {};
  }
  void stop() override {}
  std::optional<VmConfig> started;
};

class VsockHandlersTest : public ::testing::Test {
 protected:
  HttpResponse call(const std::string& method, const std::string& path, const std::string& body = "") {
    return route(controller, HttpRequest{method, path, body});
  }
  std::string fault(const HttpResponse& r) {
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("fault_message") ? j["fault_message"].get<std::string>() : "";
  }
  testing::ScratchFile kernel{"kernel"};
  RecordingLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{"id", "1.0"}, launcher};
};

TEST_F(VsockHandlersTest, PutConfiguresTheDeviceForStart) {
  auto r = call("PUT", "/vsock", R"({"guest_cid": 3, "uds_path": "/tmp/v.sock"})");
  ASSERT_EQ(r.status, 204) << r.body;
  // A second PUT replaces the first (one device per VM); the deprecated vsock_id is accepted.
  r = call("PUT", "/vsock", R"({"vsock_id": "vsock0", "guest_cid": 52, "uds_path": "/run/x.sock"})");
  ASSERT_EQ(r.status, 204) << r.body;
  auto cfg = json::parse(call("GET", "/vm/config").body);
  EXPECT_EQ(cfg["vsock"]["guest_cid"], 52);
  EXPECT_EQ(cfg["vsock"]["uds_path"], "/run/x.sock");
  ASSERT_EQ(call("PUT", "/boot-source", json{{"kernel_image_path", kernel.path()}}.dump()).status, 204);
  ASSERT_EQ(call("PUT", "/actions", R"({"action_type": "InstanceStart"})").status, 204);
  ASSERT_TRUE(launcher.started);
  ASSERT_TRUE(launcher.started->vsock);
  EXPECT_EQ(launcher.started->vsock->guest_cid, 52u);
  EXPECT_EQ(launcher.started->vsock->socket_path, "/run/x.sock");
  r = call("PUT", "/vsock", R"({"guest_cid": 3, "uds_path": "/tmp/v.sock"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(fault(r).find("after the microVM has started"), std::string::npos) << r.body;
  EXPECT_EQ(launcher.started->vsock->guest_cid, 52u);
}

TEST_F(VsockHandlersTest, BadBodiesAreRefusedAndChangeNothing) {
  const std::string too_long(100, 'a');
  struct Case {
    std::string body;
    std::string message;
  } cases[] = {
      {R"({"uds_path": "/tmp/v.sock"})", "guest_cid is required"},
      {R"({"guest_cid": 3})", "uds_path is required"},
      {R"({"guest_cid": 2, "uds_path": "/tmp/v.sock"})", "guest_cid must be between 3 and 4294967294"},
      {R"({"guest_cid": 4294967295, "uds_path": "/tmp/v.sock"})", "guest_cid must be between 3 and 4294967294"},
      {R"({"guest_cid": -3, "uds_path": "/tmp/v.sock"})", "guest_cid"},
      {R"({"guest_cid": "3", "uds_path": "/tmp/v.sock"})", "guest_cid"},
      {R"({"guest_cid": 3, "uds_path": ""})", "uds_path must be 1 to"},
      {R"({"guest_cid": 3, "uds_path": ")" + too_long + R"("})", "uds_path must be 1 to"},
      {R"({"guest_cid": 3, "uds_path": "/tmp/a\u0000b"})", "NUL"},
      {R"({"guest_cid": 3, "uds_path": "/tmp/v.sock", "extra": 1})", "unknown field 'extra'"},
      {R"([3, "/tmp/v.sock"])", ""},
      {R"({"guest_cid": 3, "uds_path": "/tmp/v.so)", "not valid JSON"},
  };
  for (const auto& c : cases) {
    auto r = call("PUT", "/vsock", c.body);
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_NE(fault(r).find(c.message), std::string::npos) << c.body << " -> " << r.body;
  }
  EXPECT_FALSE(controller.config().vsock);
  EXPECT_EQ(call("GET", "/vsock").status, 405);
}

TEST_F(VsockHandlersTest, ConfigFileSectionUsesTheSameHandler) {
  json doc = {{"boot-source", {{"kernel_image_path", kernel.path()}}},
              {"vsock", {{"guest_cid", 7}, {"uds_path", "/tmp/cfg.sock"}}}};
  ASSERT_TRUE(apply_config_document(controller, doc.dump()).has_value());
  ASSERT_TRUE(controller.config().vsock);
  EXPECT_EQ(controller.config().vsock->guest_cid, 7u);
  doc["vsock"]["guest_cid"] = 1;
  auto bad = apply_config_document(controller, doc.dump());
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().what.find("guest_cid"), std::string::npos) << bad.error().what;
}

}  // namespace
}  // namespace microvm::api
