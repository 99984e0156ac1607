// `microvm run --cloud-init ...` on /dev/kvm: the seed is a read-only virtio-blk disk (the
// last one) whose bytes are the image the seed code builds, with serial "cidata", and its
// temporary file is gone while the VM runs and after it ends. firmware/virtio_blk_driver is
// the guest: it hashes sectors 0-1, checks that writes fail on a read-only disk, reads GET_ID.
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "cli/cloud_init_seed.h"
#include "support/vm_process.h"

namespace microvm::testing {
namespace {

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
    ::closedir(d);
  }
  return out;
}

TEST(FirmwareCloudInit, SeedIsAReadOnlyDiskWithTheBuiltImageAndLeavesNoFile) {
  REQUIRE_KVM();
  TempDir dir, tmp;
  // Long enough that the driver's batch requests (sectors 16-31) lie inside the disk.
  std::string user = dir.write_file("user-data", "#cloud-config\npackages: [htop]\n" + std::string(32768, '#') + "\n");
  std::string spec = "user-data=" + user + ",hostname=seeded";
  auto files = parse_cloud_init_arg(spec);
  ASSERT_TRUE(files) << files.error().what;
  auto image = build_cloud_init_seed(*files);
  ASSERT_TRUE(image) << image.error().what;
  std::string first_sectors(reinterpret_cast<const char*>(image->data()), 1024);

  ::setenv("TMPDIR", tmp.path().c_str(), 1);  // the seed's temporary file goes here
  auto r = run_microvm(
      {"run", "--kernel", firmware_path("virtio_blk_driver"), "--memory", "64M", "--no-rng", "--cloud-init", spec},
      VmRunOptions{.timeout = std::chrono::seconds(60)});
  ::unsetenv("TMPDIR");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("VIRTIOBLK done failures=0").size(), 1u) << r.describe();
  auto initial = r.lines_with_prefix("VIRTIOBLK initial fnv1a=");
  ASSERT_EQ(initial.size(), 1u) << r.describe();
  EXPECT_EQ(std::strtoull(initial[0].c_str() + initial[0].find('=') + 1, nullptr, 0), fnv1a32(first_sectors))
      << initial[0];
  auto id = r.lines_with_prefix("VIRTIOBLK get_id status=");
  ASSERT_EQ(id.size(), 1u) << r.describe();
  EXPECT_NE(id[0].find("status=0 id=cidata"), std::string::npos) << id[0];
  EXPECT_TRUE(entries(tmp.path()).empty()) << "seed file left behind in " << tmp.path();
}

}  // namespace
}  // namespace microvm::testing
