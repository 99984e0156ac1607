#include "cli/vsock_arg.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

TEST(VsockArg, CidAndSocketInEitherSpelling) {
  auto v = parse_vsock_arg("cid=3,socket=/run/v.sock");
  ASSERT_TRUE(v) << v.error().what;
  EXPECT_EQ(v->guest_cid, 3u);
  EXPECT_EQ(v->socket_path, "/run/v.sock");
  auto fc = parse_vsock_arg("uds_path=/run/w.sock,cid=4294967294");
  ASSERT_TRUE(fc) << fc.error().what;
  EXPECT_EQ(fc->guest_cid, 4294967294u);
  EXPECT_EQ(fc->socket_path, "/run/w.sock");
}

TEST(VsockArg, RefusesReservedCidsAndIncompleteSpecs) {
  for (const char* bad : {"cid=2,socket=/s", "cid=4294967295,socket=/s", "cid=x,socket=/s", "cid=,socket=/s", "cid=3",
                          "socket=/s", "cid=3,socket=", "cid=3,socket=/s,port=5", "cid=3,/s", ""})
    EXPECT_FALSE(parse_vsock_arg(bad).has_value()) << bad;
}

}  // namespace
}  // namespace microvm
