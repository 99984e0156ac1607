#include "cli/net_arg.h"

#include <gtest/gtest.h>

#include "devices/net/host_forward.h"

namespace microvm {
namespace {

TEST(NetArg, Tap) {
  auto n = parse_net_arg("tap=tap0,mac=02:00:00:00:00:01,vhost=off");
  ASSERT_TRUE(n.has_value()) << n.error().what;
  EXPECT_EQ(n->tap, "tap0");
  EXPECT_EQ(n->mac, "02:00:00:00:00:01");
  EXPECT_EQ(n->vhost, VhostMode::kOff);
  EXPECT_FALSE(n->user);
  EXPECT_EQ(parse_net_arg("tap=t")->vhost, VhostMode::kAuto);
}

TEST(NetArg, BridgeAndUser) {
  auto b = parse_net_arg("bridge=br0");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->bridge, "br0");
  auto u = parse_net_arg("user,hostfwd=tcp::8022-:22,hostfwd=udp:127.0.0.1:5353-:53");
  ASSERT_TRUE(u.has_value()) << u.error().what;
  EXPECT_TRUE(u->user);
  ASSERT_EQ(u->hostfwd.size(), 2u);
  EXPECT_EQ(u->hostfwd[1], "udp:127.0.0.1:5353-:53");
}

TEST(NetArg, Passt) {
  auto p = parse_net_arg("passt,hostfwd=tcp::8022-:22,hostfwd=udp:0.0.0.0:5353-:53,mac=02:00:00:00:00:09");
  ASSERT_TRUE(p.has_value()) << p.error().what;
  EXPECT_TRUE(p->passt);
  EXPECT_FALSE(p->user);
  ASSERT_EQ(p->hostfwd.size(), 2u);
  EXPECT_EQ(p->hostfwd[0], "tcp::8022-:22");
  EXPECT_EQ(p->mac, "02:00:00:00:00:09");
  // libslirp's own knobs are not passt's; passt must come first and alone.
  for (const char* bad : {"passt,host-loopback=on", "passt,restrict=on", "passt,max-sockets=9", "passt,vhost=on",
                          "tap=x,passt", "passt,user", "user,passt", "passt=1", "passt,hostfwd=tcp:1-:2"})
    EXPECT_FALSE(parse_net_arg(bad).has_value()) << bad;
}

TEST(NetArg, Refuses) {
  for (const char* bad :
       {"", "tap", "tap=", "tap=a,bridge=b", "user,tap=x", "tap=x,user", "tap=x,vhost=maybe", "tap=x,hostfwd=tcp::1-:2",
        "user,vhost=on", "tap=x,colour=red", "user,hostfwd=tcp:1-:2", "tap=0123456789abcdef", "user,hostfwd=icmp::1-:2",
        "user,hostfwd=tcp::0-:22", "user,hostfwd=tcp::70000-:22", "user,hostfwd=tcp::22-:x"})
    EXPECT_FALSE(parse_net_arg(bad).has_value()) << bad;
}

TEST(NetArg, UserIsolationOptions) {
  auto d = parse_net_arg("user");
  ASSERT_TRUE(d.has_value());
  EXPECT_FALSE(d->host_loopback) << "the host's loopback is closed by default";
  EXPECT_FALSE(d->restrict_to_forwards);
  auto o = parse_net_arg("user,host-loopback=on,restrict=on");
  ASSERT_TRUE(o.has_value()) << o.error().what;
  EXPECT_TRUE(o->host_loopback);
  EXPECT_TRUE(o->restrict_to_forwards);
  auto off = parse_net_arg("user,host-loopback=off,restrict=off");
  ASSERT_TRUE(off.has_value());
  EXPECT_FALSE(off->host_loopback);
  EXPECT_FALSE(off->restrict_to_forwards);
  EXPECT_EQ(d->max_host_sockets, 256u) << "a cap on slirp's host sockets by default";
  auto m = parse_net_arg("user,max-sockets=32");
  ASSERT_TRUE(m.has_value()) << m.error().what;
  EXPECT_EQ(m->max_host_sockets, 32u);
  for (const char* bad : {"user,max-sockets=0", "user,max-sockets=x", "user,max-sockets=70000", "tap=x,max-sockets=4",
                          "user,max-sockets="})
    EXPECT_FALSE(parse_net_arg(bad).has_value()) << bad;
  for (const char* bad : {"user,host-loopback=yes", "user,restrict=1", "user,host-loopback", "tap=x,restrict=on",
                          "bridge=b,host-loopback=on"})
    EXPECT_FALSE(parse_net_arg(bad).has_value()) << bad;
}

TEST(NetArg, HostForwardAddress) {
  // No address: the backend binds 127.0.0.1; an explicit 0.0.0.0 asks for every address.
  auto any = parse_hostfwd("tcp:0.0.0.0:8022-:22");
  ASSERT_TRUE(any.has_value()) << any.error().what;
  EXPECT_EQ(any->host_addr, "0.0.0.0");
  for (const char* bad : {"tcp:localhost:1-:2", "tcp:1.2.3:1-:2", "tcp:::1:1-:2", "udp:1.2.3.4.5:1-:2"})
    EXPECT_FALSE(parse_hostfwd(bad).has_value()) << bad;
}

TEST(NetArg, HostForward) {
  auto f = parse_hostfwd("tcp::8080-:80");
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(f->udp);
  EXPECT_EQ(f->host_addr, "");
  EXPECT_EQ(f->host_port, 8080);
  EXPECT_EQ(f->guest_port, 80);
  auto g = parse_hostfwd("udp:127.0.0.1:53-:5353");
  ASSERT_TRUE(g.has_value());
  EXPECT_TRUE(g->udp);
  EXPECT_EQ(g->host_addr, "127.0.0.1");
  EXPECT_FALSE(parse_hostfwd("tcp::80-10.0.2.15:80").has_value());
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

TEST(NetArg, RateLimits) {
  auto n = parse_net_arg("tap=t0,bps=10M,pps=1000,pps_burst=100");
  ASSERT_TRUE(n.has_value()) << n.error().what;
  EXPECT_EQ(n->rate_limit.bytes.per_second, 10u << 20);
  EXPECT_EQ(n->rate_limit.ops.per_second, 1000u);
  EXPECT_EQ(n->rate_limit.ops.burst, 100u);
  EXPECT_EQ(n->vhost, VhostMode::kOff) << "vhost=auto falls back to the userspace path, which can hold frames back";
  auto u = parse_net_arg("user,bps=1K");
  ASSERT_TRUE(u.has_value()) << u.error().what;
  EXPECT_EQ(u->rate_limit.bytes.per_second, 1024u);
  EXPECT_FALSE(parse_net_arg("tap=t0,vhost=on,bps=1M").has_value());
  EXPECT_FALSE(parse_net_arg("tap=t0,pps_burst=5").has_value());
  EXPECT_FALSE(parse_net_arg("tap=t0,bps=0").has_value());
  EXPECT_FALSE(parse_net_arg("tap=t0,iops=5").has_value()) << "disks' key, not the network's";
}

}  // namespace
}  // namespace microvm
