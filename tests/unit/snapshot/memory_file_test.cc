#include "vmm/snapshot/memory_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace microvm::snapshot {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

class MemoryFileTest : public ::testing::TestWithParam<MemoryBacking> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microvm-memfile-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ::close(fd);
    path_ = tmpl;
  }
  void TearDown() override { ::unlink(path_.c_str()); }
  std::string path_;
};

TEST_P(MemoryFileTest, OnlyNonZeroPagesAreWrittenAndTheLayoutIsKept) {
  MemoryLayoutEntry layout[] = {{GuestAddress(0), 8 * kMiB}, {GuestAddress(16 * kMiB), 8 * kMiB}};
  auto mem = GuestMemory::create(layout, GetParam());
  ASSERT_TRUE(mem) << mem.error().what;
  ASSERT_TRUE((*mem)->write_obj<uint64_t>(GuestAddress(4096 * 3 + 8), 0x1122334455667788));
  ASSERT_TRUE((*mem)->write_obj<uint32_t>(GuestAddress(16 * kMiB + 8 * 4096), 0xabcdef01));
  // A page the guest touched but left zero: written to RAM, not to the file.
  ASSERT_TRUE((*mem)->write_obj<uint64_t>(GuestAddress(5 * kMiB), 0));

  auto stats = save_memory(**mem, path_);
  ASSERT_TRUE(stats) << stats.error().what;
  EXPECT_EQ(stats->bytes_total, 16 * kMiB);
  EXPECT_EQ(stats->bytes_written, 2 * 4096u);

  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 16 * kMiB);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, 64 * 1024u) << "the file is not sparse";

  // Read back through map_file: the second region sits right after the first in the file.
  int fd = ::open(path_.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto back = GuestMemory::map_file(layout, fd, FileMapMode::kPrivate);
  ::close(fd);
  ASSERT_TRUE(back) << back.error().what;
  EXPECT_EQ(*(*back)->read_obj<uint64_t>(GuestAddress(4096 * 3 + 8)), 0x1122334455667788u);
  EXPECT_EQ(*(*back)->read_obj<uint32_t>(GuestAddress(16 * kMiB + 8 * 4096)), 0xabcdef01u);
  EXPECT_EQ(*(*back)->read_obj<uint64_t>(GuestAddress(7 * kMiB)), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backings, MemoryFileTest, ::testing::Values(MemoryBacking::kMemfd, MemoryBacking::kAnonymous));

TEST(MemoryFile, AnUnwritablePathIsAnErrorNamingIt) {
  auto mem = GuestMemory::create_anonymous(kMiB);
  ASSERT_TRUE(mem);
  auto r = save_memory(**mem, "/nonexistent-dir/memory");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("/nonexistent-dir/memory"), std::string::npos);
}

}  // namespace
}  // namespace microvm::snapshot
