#include "api/config_file.h"

#include <gtest/gtest.h>

#include "tests/testing/temp_file_for_api.h"

namespace microvm::api {
namespace {

class NullLauncher : public VmLauncher {
 public:
  Result<void> start(const VmConfig&) override { return {}; }
  void stop() override {}
};

class ConfigFileTest : public ::testing::Test {
 protected:
  testing::ScratchFile kernel{"vmlinux"};
  testing::ScratchFile disk{"rootfs.ext4"};
  NullLauncher launcher;
  Controller controller{VmConfig{}, InstanceInfo{}, launcher};
};

TEST_F(ConfigFileTest, FirecrackerDocumentFillsTheConfig) {
  std::string doc = R"({"boot-source": {"kernel_image_path": ")" + kernel.path() + R"(", "boot_args": "console=ttyS0"},
    "drives": [{"drive_id": "rootfs", "path_on_host": ")" +
                    disk.path() + R"(", "is_root_device": true, "is_read_only": true}],
    "machine-config": {"vcpu_count": 2, "mem_size_mib": 128},
    "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap7"}]})";
  ASSERT_TRUE(apply_config_document(controller, doc));
  VmConfig v = controller.vm_config();
  EXPECT_EQ(v.kernel_path, kernel.path());
  EXPECT_EQ(v.cpus, 2u);
  EXPECT_EQ(v.memory_bytes, 128ull << 20);
  ASSERT_EQ(v.disks.size(), 1u);
  EXPECT_TRUE(v.disks[0].read_only);
  EXPECT_EQ(v.cmdline, "console=ttyS0 root=/dev/vda ro");
  ASSERT_EQ(v.nets.size(), 1u);
  EXPECT_EQ(v.nets[0].tap, "tap7");
}

TEST_F(ConfigFileTest, ErrorsNameTheSection) {
  auto r = apply_config_document(controller, R"({"boot-source": {"kernel_image_path": "/nonexistent/k"}})");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("boot-source"), std::string::npos) << r.error().what;
  EXPECT_NE(r.error().what.find("/nonexistent/k"), std::string::npos) << r.error().what;
  std::string bad_drive = R"({"boot-source": {"kernel_image_path": ")" + kernel.path() +
                          R"("}, "drives": [{"drive_id": "a", "path_on_host": ")" + disk.path() +
                          R"(", "is_root_device": false, "colour": 1}]})";
  r = apply_config_document(controller, bad_drive);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "config file: drives[0]: unknown field 'colour'");
  EXPECT_FALSE(apply_config_document(controller, R"({"vsock": {}})"));
  EXPECT_FALSE(apply_config_document(controller, "{"));
  EXPECT_FALSE(apply_config_document(controller, R"({"machine-config": {"vcpu_count": 1, "mem_size_mib": 64}})"));
  EXPECT_FALSE(apply_config_document(
      controller, R"({"boot-source": {"kernel_image_path": ")" + kernel.path() + R"("}, "drives": {}})"));
}

}  // namespace
}  // namespace microvm::api
