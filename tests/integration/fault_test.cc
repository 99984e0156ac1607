// Host faults at start-up, with the real binary and a firmware guest (boot_check): an empty
// hugepage pool makes `microvm run --hugepages` exit 1 before any vCPU runs, with a message
// naming the pages needed, the pages free and the sysctl that fixes it; with a big enough pool
// the same command boots. The pool (/proc/sys/vm/nr_hugepages) is shared by the whole host:
// it is changed only for the moment of each run and always restored.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

constexpr const char* kPoolSysctl = "/proc/sys/vm/nr_hugepages";
constexpr const char* kFreePages = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";

uint64_t read_u64(const char* path) {
  std::ifstream in(path);
  uint64_t v = 0;
  in >> v;
  return v;
}

bool write_u64(const char* path, uint64_t v) {
  std::ofstream out(path);
  out << v << "\n";
  out.flush();
  return static_cast<bool>(out);
}

// Restores the pool size it found, whatever the test did in between.
class HugepagePoolGuard {
 public:
  HugepagePoolGuard() : saved_(read_u64(kPoolSysctl)) {}
  ~HugepagePoolGuard() { write_u64(kPoolSysctl, saved_); }
  uint64_t saved() const { return saved_; }

 private:
  uint64_t saved_;
};

VmRunResult boot_hugepages() {
  return run_microvm({"run", "--kernel", firmware_path("boot_check"), "--memory", "64M", "--hugepages"},
                     VmRunOptions{.timeout = std::chrono::seconds(30)});
}

class HugepageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_KVM();
    ASSERT_EQ(::geteuid(), 0u) << "this test sets " << kPoolSysctl << " (needs root)";
    ASSERT_EQ(::access(kFreePages, R_OK), 0) << "no 2 MiB hugetlb pool on this kernel";
  }
};

TEST_F(HugepageFaultTest, EmptyPoolExitsOneNamingPagesAndTheSysctl) {
  HugepagePoolGuard guard;
  ASSERT_TRUE(write_u64(kPoolSysctl, 0));
  // Pages another process holds cannot be taken away; with them the pool is still exhausted.
  ASSERT_EQ(read_u64(kFreePages), 0u) << "could not empty the pool";
  VmRunResult r = boot_hugepages();
  write_u64(kPoolSysctl, guard.saved());  // give the pool back at once (the guard covers failures)

  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("needs 32 free 2 MiB huge pages"), std::string::npos) << "pages needed\n" << r.describe();
  EXPECT_NE(r.err.find("only 0 of"), std::string::npos) << "pages free\n" << r.describe();
  EXPECT_NE(r.err.find("sysctl -w vm.nr_hugepages="), std::string::npos) << "the fix\n" << r.describe();
  EXPECT_TRUE(r.out.empty()) << "the guest must not start without its memory\n" << r.describe();
}

TEST_F(HugepageFaultTest, BigEnoughPoolBoots) {
  HugepagePoolGuard guard;
  uint64_t free_pages = read_u64(kFreePages);
  if (free_pages < 32) ASSERT_TRUE(write_u64(kPoolSysctl, guard.saved() + (32 - free_pages)));
  ASSERT_GE(read_u64(kFreePages), 32u) << "could not grow the pool to 32 free pages";
  VmRunResult r = boot_hugepages();
  ASSERT_FALSE(r.timed_out) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK FAIL").size(), 0u) << r.describe();
  EXPECT_EQ(r.lines_with_prefix("BOOTCHECK done failures=0").size(), 1u) << r.describe();
}

}  // namespace
}  // namespace microvm::testing
