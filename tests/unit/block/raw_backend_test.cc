#include "devices/block/raw_backend.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "devices/block/open_disk.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;

class RawTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    path_ = dir_.file("disk.raw");
    ASSERT_EQ(run("truncate -s 4M " + path_), 0);
  }
  DiskOptions opts() {
    DiskOptions o;
    o.path = path_;
    o.format = DiskFormat::kRaw;
    o.engine = GetParam();
    return o;
  }
  TempDir dir_;
  std::string path_;
};

TEST_P(RawTest, ReadWriteFlushDiscardZeroes) {
  auto d = open_disk(opts());
  ASSERT_TRUE(d) << d.error().what;
  auto& b = **d;
  EXPECT_EQ(b.size_bytes(), 4u << 20);
  auto data = pattern(1 << 20, 11);
  ASSERT_EQ(do_write(b, 512 * 3, data.data(), data.size()), 1 << 20);
  ASSERT_EQ(do_flush(b), 0);
  std::vector<uint8_t> back(data.size());
  ASSERT_EQ(do_read(b, 512 * 3, back.data(), back.size()), 1 << 20);
  EXPECT_EQ(back, data);
  ASSERT_EQ(do_write_zeroes(b, 4096, 4096, false), 0);
  ASSERT_EQ(do_discard(b, 1 << 20, 65536), 0);
  ASSERT_EQ(do_read(b, 4096, back.data(), 4096), 4096);
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(back[i], 0);
  auto file = read_file(path_);
  EXPECT_EQ(0, std::memcmp(file.data() + 8192, data.data() + 8192 - 1536, 4096));
}

TEST_P(RawTest, OutOfRangeAndReadOnlyAreRefused) {
  auto o = opts();
  auto d = open_disk(o);
  ASSERT_TRUE(d) << d.error().what;
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(do_read(**d, (4u << 20) - 512, buf.data(), buf.size()), -EINVAL);
  EXPECT_EQ(do_write(**d, UINT64_MAX - 100, buf.data(), buf.size()), -EINVAL);
  d->reset();
  o.read_only = true;
  auto r = open_disk(o);
  ASSERT_TRUE(r) << r.error().what;
  EXPECT_TRUE((*r)->read_only());
  EXPECT_EQ(do_write(**r, 0, buf.data(), buf.size()), -EROFS);
  EXPECT_EQ(do_discard(**r, 0, 4096), -EROFS);
  EXPECT_EQ(do_read(**r, 0, buf.data(), buf.size()), 4096);
}

TEST_P(RawTest, OpenTwiceInOneProcessIsRefusedNamingTheHolder) {
  auto a = open_disk(opts());
  ASSERT_TRUE(a) << a.error().what;
  auto b = open_disk(opts());
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().what.find("in use by process " + std::to_string(::getpid())), std::string::npos)
      << b.error().what;
  auto o = opts();
  o.read_only = true;
  EXPECT_FALSE(open_disk(o)) << "a reader must not share an image with a writer";
  a->reset();
  EXPECT_TRUE(open_disk(opts()));
}

TEST_P(RawTest, ReadOnlyOpensShareTheImage) {
  auto o = opts();
  o.read_only = true;
  auto a = open_disk(o);
  auto b = open_disk(o);
  ASSERT_TRUE(a) << a.error().what;
  ASSERT_TRUE(b) << b.error().what;
  EXPECT_FALSE(open_disk(opts())) << "a writer must wait for the readers";
}

TEST_P(RawTest, LockHeldByAnotherProcessIsReportedWithItsPid) {
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto d = open_disk(opts());
    char c = d ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    (void)!::read(done[0], &c, 1);
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  auto mine = open_disk(opts());
  EXPECT_FALSE(mine);
  if (!mine) {
    EXPECT_NE(mine.error().what.find("process " + std::to_string(child)), std::string::npos) << mine.error().what;
  }
  (void)!::write(done[1], &c, 1);
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_TRUE(open_disk(opts())) << "the lock goes away with the process";
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
}

TEST_P(RawTest, CacheNoneUsesODirectAndRefusesMisalignedRequests) {
  auto o = opts();
  o.cache = CacheMode::kNone;
  auto r = RawBackend::open(o);
  ASSERT_TRUE(r) << r.error().what;
  auto& b = **r;
  if (!b.direct_io()) GTEST_SKIP() << "the test directory's filesystem refuses O_DIRECT";
  void* mem = nullptr;
  ASSERT_EQ(::posix_memalign(&mem, 4096, 65536), 0);
  auto data = pattern(65536, 5);
  std::memcpy(mem, data.data(), data.size());
  EXPECT_EQ(do_write(b, 4096, mem, 65536), 65536);
  std::memset(mem, 0, 65536);
  EXPECT_EQ(do_read(b, 4096, mem, 65536), 65536);
  EXPECT_EQ(0, std::memcmp(mem, data.data(), 65536));
  EXPECT_EQ(do_read(b, 100, mem, 512), -EINVAL);                        // offset
  EXPECT_EQ(do_read(b, 0, static_cast<char*>(mem) + 1, 512), -EINVAL);  // buffer
  EXPECT_EQ(do_write(b, 0, mem, 100), -EINVAL);                         // length
  EXPECT_EQ(do_flush(b), 0);
  ::free(mem);
}

INSTANTIATE_TEST_SUITE_P(Engines, RawTest, ::testing::Values(EngineKind::kIoUring, EngineKind::kSync),
                         [](const auto& info) {
                           return std::string(info.param == EngineKind::kSync ? "Sync" : "IoUring");
                         });

TEST(OpenDisk, MissingFileNamesThePath) {
  DiskOptions o;
  o.path = "/nonexistent/dir/x.img";
  auto d = open_disk(o);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().what.find("/nonexistent/dir/x.img"), std::string::npos);
}

}  // namespace
}  // namespace microvm
