#include "cli/memory_device_args.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

TEST(BalloonArg, DefaultsAndEveryOption) {
  auto empty = parse_balloon_arg("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->size_bytes, 0u);
  EXPECT_FALSE(empty->free_page_reporting);
  EXPECT_EQ(empty->stats_interval_s, 0u);
  auto b = parse_balloon_arg("size=128,deflate-on-oom=on,free-page-reporting=on,stats=5");
  ASSERT_TRUE(b.has_value()) << b.error().what;
  EXPECT_EQ(b->size_bytes, 128ull << 20);  // a bare number is MiB
  EXPECT_TRUE(b->deflate_on_oom);
  EXPECT_TRUE(b->free_page_reporting);
  EXPECT_EQ(b->stats_interval_s, 5u);
  EXPECT_EQ(parse_balloon_arg("size=1G")->size_bytes, 1ull << 30);
}

TEST(BalloonArg, RefusesBadValues) {
  for (const char* bad :
       {"size=lots", "stats=-1", "stats=99999999999", "stats=", "free-page-reporting=yes", "nonsense=1", "size"}) {
    EXPECT_FALSE(parse_balloon_arg(bad).has_value()) << bad;
  }
}

TEST(PmemArg, PathAndReadOnly) {
  auto p = parse_pmem_arg("/images/root.ext4,readonly=on");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->path, "/images/root.ext4");
  EXPECT_TRUE(p->read_only);
  EXPECT_FALSE(parse_pmem_arg("img")->read_only);
  EXPECT_FALSE(parse_pmem_arg("").has_value());
  EXPECT_FALSE(parse_pmem_arg(",readonly=on").has_value());
  EXPECT_FALSE(parse_pmem_arg("img,readonly=maybe").has_value());
  EXPECT_FALSE(parse_pmem_arg("img,cache=none").has_value());
}

}  // namespace
}  // namespace microvm
