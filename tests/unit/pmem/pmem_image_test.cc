#include "devices/pmem/pmem_image.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace microvm {
namespace {

class PmemImageTest : public ::testing::Test {
 protected:
  std::string path;
  void SetUp() override {
    char tmpl[] = "/tmp/pmem_image_test.XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 4 << 20), 0);
    ASSERT_EQ(::pwrite(fd, "hello", 5, 3 << 20), 5);
    ::close(fd);
    path = tmpl;
  }
  void TearDown() override { ::unlink(path.c_str()); }
};

TEST_F(PmemImageTest, MapsTheFileShared) {
  auto img = PmemImage::open(path, false);
  ASSERT_TRUE(img.has_value()) << img.error().what;
  EXPECT_EQ((*img)->size(), 4u << 20);
  EXPECT_EQ(std::memcmp((*img)->host() + (3 << 20), "hello", 5), 0);
  std::memcpy((*img)->host() + 100, "guest", 5);
  ASSERT_TRUE((*img)->flush().has_value());
  int fd = ::open(path.c_str(), O_RDONLY);
  char buf[5];
  ASSERT_EQ(::pread(fd, buf, 5, 100), 5);
  ::close(fd);
  EXPECT_EQ(std::memcmp(buf, "guest", 5), 0);
}

TEST_F(PmemImageTest, SizeMustBeAMultipleOfTwoMiB) {
  ASSERT_EQ(::truncate(path.c_str(), (4 << 20) + 4096), 0);
  auto img = PmemImage::open(path, true);
  ASSERT_FALSE(img.has_value());
  EXPECT_NE(img.error().what.find("2 MiB"), std::string::npos);
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  EXPECT_FALSE(PmemImage::open(path, true).has_value());
  EXPECT_FALSE(PmemImage::open("/nonexistent/pmem.img", true).has_value());
  EXPECT_FALSE(PmemImage::open("/tmp", true).has_value());
}

TEST_F(PmemImageTest, ReadOnlyUsersShareButAWriterIsExclusive) {
  auto a = PmemImage::open(path, true);
  auto b = PmemImage::open(path, true);
  ASSERT_TRUE(a.has_value()) << a.error().what;
  ASSERT_TRUE(b.has_value()) << b.error().what;
  EXPECT_FALSE(PmemImage::open(path, false).has_value());
  a->reset();
  b->reset();
  auto w = PmemImage::open(path, false);
  ASSERT_TRUE(w.has_value()) << w.error().what;
  EXPECT_FALSE(PmemImage::open(path, true).has_value());
  EXPECT_FALSE(PmemImage::open(path, false).has_value());
}

}  // namespace
}  // namespace microvm
