#include "cli/rate_limit_arg.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

using json = nlohmann::json;

TEST(TokenBucketArg, SizePerRefillWithSuffixesAndAOneTimeBurst) {
  EXPECT_EQ(*parse_token_bucket_arg("10M/1s"), (json{{"size", 10u << 20}, {"refill_time", 1000}}));
  EXPECT_EQ(*parse_token_bucket_arg("100/250"), (json{{"size", 100}, {"refill_time", 250}}));
  EXPECT_EQ(*parse_token_bucket_arg("4K/100ms+1G"),
            (json{{"size", 4096}, {"refill_time", 100}, {"one_time_burst", 1u << 30}}));
  EXPECT_EQ(*parse_token_bucket_arg("1/1+0"), (json{{"size", 1}, {"refill_time", 1}, {"one_time_burst", 0}}));
  EXPECT_EQ(*parse_token_bucket_arg("off"), (json{{"size", 0}, {"refill_time", 0}}));
  EXPECT_TRUE((*parse_token_bucket_arg("off"))["size"].is_number_unsigned()) << "what the server's parser takes";
}

TEST(TokenBucketArg, RefusesWhatIsNotABucketAndSaysWhy) {
  struct Case {
    const char* spec;
    const char* says;
  } cases[] = {
      {"", "SIZE/REFILL"},
      {"10M", "SIZE/REFILL"},
      {"0/1s", "positive"},
      {"x/1s", "'x/1s'"},
      {"10/0", "refill time"},
      {"10/1h", "refill time"},
      {"10/", "refill time"},
      {"10/ms", "refill time"},
      {"10/1s+", "one-time burst"},
      {"10/1s+x", "one-time burst"},
      {"10/99999999999999999999s", "refill time"},
      {"10/18446744073709552s", "refill"},
  };
  for (const auto& c : cases) {
    auto r = parse_token_bucket_arg(c.spec);
    ASSERT_FALSE(r) << c.spec << " parsed as " << r->dump();
    EXPECT_NE(r.error().what.find(c.says), std::string::npos) << c.spec << ": " << r.error().what;
  }
}

TEST(TokenBucketArg, Describes) {
  EXPECT_EQ(describe_token_bucket(*parse_token_bucket_arg("1K/100ms+5")), "1024 per 100 ms, one-time burst 5");
  EXPECT_EQ(describe_token_bucket(*parse_token_bucket_arg("7/1s")), "7 per 1000 ms");
  EXPECT_EQ(describe_token_bucket(*parse_token_bucket_arg("off")), "unlimited");
  EXPECT_EQ(describe_token_bucket(json::array()), "unlimited");
}

}  // namespace
}  // namespace microvm
