// GuestMemory::map_file(): guest RAM from a snapshot's memory file, in each mode.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "memory/guest_memory.h"

namespace microvm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// A 3 MiB sparse file: region 0 ([0, 1 MiB) in the guest) then region 1 ([4, 6 MiB)),
// with a marker byte at the start of each and a hole elsewhere.
class MapFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/microvm-mapfile-XXXXXX";
    fd_ = ::mkstemp(tmpl);
    ASSERT_GE(fd_, 0);
    path_ = tmpl;
    ASSERT_EQ(::ftruncate(fd_, 3 * kMiB), 0);
    ASSERT_EQ(::pwrite(fd_, "A", 1, 0), 1);
    ASSERT_EQ(::pwrite(fd_, "B", 1, kMiB), 1);
    ASSERT_EQ(::pwrite(fd_, "C", 1, 2 * kMiB + 5), 1);
  }
  void TearDown() override {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  char file_byte(uint64_t off) {
    char c = 0;
    EXPECT_EQ(::pread(fd_, &c, 1, static_cast<off_t>(off)), 1);
    return c;
  }
  static constexpr MemoryLayoutEntry kLayout[] = {{GuestAddress(0), kMiB}, {GuestAddress(4 * kMiB), 2 * kMiB}};
  int fd_ = -1;
  std::string path_;
};

TEST_F(MapFileTest, PrivateMappingReadsTheFileAndKeepsWritesPrivate) {
  for (FileMapMode mode : {FileMapMode::kPrivate, FileMapMode::kPrivatePopulate}) {
    auto m = GuestMemory::map_file(kLayout, fd_, mode);
    ASSERT_TRUE(m) << m.error().what;
    EXPECT_EQ((*m)->backing(), MemoryBacking::kFilePrivate);
    EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(0)), 'A');
    EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(4 * kMiB)), 'B');
    EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(5 * kMiB + 5)), 'C');
    EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(100)), 0);
    ASSERT_TRUE((*m)->write_obj<char>(GuestAddress(0), 'Z'));
    EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(0)), 'Z');
    EXPECT_EQ(file_byte(0), 'A') << "a write through a private mapping reached the file";
    // Not shareable with vhost-user back ends.
    EXPECT_EQ((*m)->fd(), -1);
    for (const auto& r : (*m)->regions()) EXPECT_EQ(r.fd, -1);
    EXPECT_FALSE((*m)->translate(GuestAddress(2 * kMiB), 1));  // the gap is not RAM
  }
}

TEST_F(MapFileTest, CopyToMemfdGivesShareableRamWithTheSameContents) {
  auto m = GuestMemory::map_file(kLayout, fd_, FileMapMode::kCopyToMemfd);
  ASSERT_TRUE(m) << m.error().what;
  EXPECT_EQ((*m)->backing(), MemoryBacking::kMemfd);
  ASSERT_GE((*m)->fd(), 0);
  EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(0)), 'A');
  EXPECT_EQ(*(*m)->read_obj<char>(GuestAddress(5 * kMiB + 5)), 'C');
  ASSERT_TRUE((*m)->write_obj<char>(GuestAddress(4 * kMiB), 'Y'));
  EXPECT_EQ(file_byte(kMiB), 'B');
  char c = 0;
  ASSERT_EQ(::pread((*m)->fd(), &c, 1, static_cast<off_t>(kMiB)), 1);  // region 1 starts at 1 MiB in the memfd
  EXPECT_EQ(c, 'Y');
  EXPECT_EQ((*m)->regions()[1].fd, (*m)->fd());
  EXPECT_EQ((*m)->regions()[1].fd_offset, kMiB);
}

TEST_F(MapFileTest, AShortFileIsRefusedWithBothSizes) {
  ASSERT_EQ(::ftruncate(fd_, 2 * kMiB), 0);
  for (FileMapMode mode : {FileMapMode::kPrivate, FileMapMode::kCopyToMemfd}) {
    auto m = GuestMemory::map_file(kLayout, fd_, mode);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().what.find("shorter than the 3145728 bytes"), std::string::npos) << m.error().what;
  }
}

TEST_F(MapFileTest, NotARegularFileIsRefused) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  auto m = GuestMemory::map_file(kLayout, p[0], FileMapMode::kPrivate);
  EXPECT_FALSE(m);
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace
}  // namespace microvm
