#include "cli/disk_spec.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

TEST(DiskSpec, FullSpec) {
  auto s = parse_disk_spec(
      "/img/a.qcow2,format=qcow2,readonly=on,cache=none,serial=abc,backing=/img/base.raw,backing_format=raw");
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_EQ(s->options.path, "/img/a.qcow2");
  EXPECT_EQ(s->options.format, DiskFormat::kQcow2);
  EXPECT_TRUE(s->options.read_only);
  EXPECT_EQ(s->options.cache, CacheMode::kNone);
  EXPECT_EQ(s->serial, "abc");
  EXPECT_EQ(s->options.backing, "/img/base.raw");
  EXPECT_EQ(s->options.backing_format, DiskFormat::kRaw);
  EXPECT_FALSE(s->options.allow_image_backing);
}

TEST(DiskSpec, Defaults) {
  auto s = parse_disk_spec("disk.raw,format=raw");
  ASSERT_TRUE(s) << s.error().what;
  EXPECT_FALSE(s->options.read_only);
  EXPECT_EQ(s->options.cache, CacheMode::kWriteback);
  EXPECT_EQ(s->options.engine, EngineKind::kAuto);
  EXPECT_TRUE(s->serial.empty());
}

TEST(DiskSpec, Errors) {
  auto expect_err = [](const char* spec, const char* needle) {
    auto s = parse_disk_spec(spec);
    ASSERT_FALSE(s) << spec;
    EXPECT_NE(s.error().what.find(needle), std::string::npos) << s.error().what;
  };
  expect_err("disk.raw", "format= is required");
  expect_err("disk.raw,format=vmdk", "unknown disk format 'vmdk'");
  expect_err("disk.raw,format=raw,colour=blue", "unknown disk option 'colour'");
  expect_err("disk.raw,format=raw,readonly=maybe", "expected on or off");
  expect_err("disk.raw,format=raw,cache=unsafe", "cache=unsafe");
  expect_err(",format=raw", "path is empty");
  expect_err("disk.raw,format=raw,serial=123456789012345678901", "at most 20 bytes");
  expect_err("disk.raw,format=raw,backing=b.img", "only qcow2");
  expect_err("disk.raw,format=raw,junk", "expected key=value");
  expect_err("disk.raw,format=raw,engine=aio", "engine=aio");
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST(DiskSpec, RateLimits) {
  auto s = parse_disk_spec("d.raw,format=raw,bps=8M,iops=100,iops_burst=10");
  ASSERT_TRUE(s.has_value()) << s.error().what;
  EXPECT_EQ(s->rate_limit.bytes.per_second, 8u << 20);
  EXPECT_EQ(s->rate_limit.bytes.burst, 0u);
  EXPECT_EQ(s->rate_limit.ops.per_second, 100u);
  EXPECT_EQ(s->rate_limit.ops.burst, 10u);
  EXPECT_FALSE(parse_disk_spec("d.raw,format=raw,iops=0").has_value());
  EXPECT_FALSE(parse_disk_spec("d.raw,format=raw,bps_burst=1M").has_value());
  EXPECT_FALSE(parse_disk_spec("d.raw,format=raw,pps=5").has_value());
  EXPECT_FALSE(parse_disk_spec("d.raw,format=raw,bps=fast").has_value());
}

}  // namespace
}  // namespace microvm
