#include "devices/vhost/vhost_user_client.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <functional>
#include <thread>

#include "devices/vhost/vhost_user_reply.h"
#include "tests/unit/vhost/fake_vhost_backend.h"

namespace microvm {
namespace {

using namespace vhost_user;
using testing::FakeVhostBackend;
using testing::VhostMsg;

constexpr uint64_t kVersion1 = 1ull << 32;

// A client and a backend thread running `script` on the other end of a socketpair.
struct Pair {
  explicit Pair(std::function<void(FakeVhostBackend&)> script,
                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    backend = std::make_unique<FakeVhostBackend>(Fd(sv[1]));
    auto c = VhostUserClient::from_fd(Fd(sv[0]), timeout);
    EXPECT_TRUE(c.has_value());
    client.emplace(std::move(*c));
    thread = std::thread([this, script = std::move(script)] { script(*backend); });
  }
  ~Pair() {
    client.reset();  // closes our end, so a script blocked in read() returns
    thread.join();
  }
  std::optional<VhostUserClient> client;
  std::unique_ptr<FakeVhostBackend> backend;
  std::thread thread;
};

// Serves the handshake with `features` and `protocol`, recording what was asked.
void serve_handshake(FakeVhostBackend& b, uint64_t features, uint64_t protocol, std::vector<VhostMsg>* seen) {
  while (auto m = b.read()) {
    switch (m->request()) {
      case Request::kGetFeatures:
        b.reply(Request::kGetFeatures, features);
        break;
      case Request::kGetProtocolFeatures:
        b.reply(Request::kGetProtocolFeatures, protocol);
        break;
      default:
        b.ack(*m);
        break;
    }
    seen->push_back(std::move(*m));
    if (seen->back().request() == Request::kSetOwner) return;
  }
}

TEST(VhostUserClient, NegotiatesInSpecOrderAndOnlyKnownProtocolFeatures) {
  std::vector<VhostMsg> seen;
  uint64_t features = kVersion1 | kFeatureProtocolFeatures;
  {
    Pair p([&](FakeVhostBackend& b) {
      serve_handshake(b, features, kProtocolReplyAck | kProtocolMq | kProtocolConfig, &seen);
    });
    auto r = p.client->negotiate();
    ASSERT_TRUE(r.has_value()) << r.error().what;
    EXPECT_EQ(*r, features);
    EXPECT_EQ(p.client->protocol_features(), kProtocolReplyAck);
  }
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].request(), Request::kGetFeatures);
  EXPECT_EQ(seen[1].request(), Request::kGetProtocolFeatures);
  EXPECT_EQ(seen[2].request(), Request::kSetProtocolFeatures);
  EXPECT_EQ(seen[2].as<uint64_t>(), kProtocolReplyAck);
  EXPECT_EQ(seen[2].header.flags & kFlagNeedReply, 0u);  // the ack feature is not in force yet
  EXPECT_EQ(seen[3].request(), Request::kSetOwner);
  EXPECT_NE(seen[3].header.flags & kFlagNeedReply, 0u);
  for (auto& m : seen) EXPECT_EQ(m.header.flags & kVersionMask, kVersion);
}

TEST(VhostUserClient, WithoutProtocolFeaturesSkipsThemAndAsksNoAcks) {
  std::vector<VhostMsg> seen;
  {
    Pair p([&](FakeVhostBackend& b) { serve_handshake(b, kVersion1, 0, &seen); });
    ASSERT_TRUE(p.client->negotiate().has_value());
    EXPECT_EQ(p.client->protocol_features(), 0u);
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].request(), Request::kGetFeatures);
  EXPECT_EQ(seen[1].request(), Request::kSetOwner);
  EXPECT_EQ(seen[1].header.flags & kFlagNeedReply, 0u);
}

TEST(VhostUserClient, MemTableCarriesEachRegionsFdOffsetSizeAndAddresses) {
  Fd memfd(::memfd_create("guest-ram", MFD_CLOEXEC));
  ASSERT_TRUE(memfd.valid());
  ASSERT_EQ(::ftruncate(memfd.get(), 3 << 20), 0);
  struct stat want {};
  ASSERT_EQ(::fstat(memfd.get(), &want), 0);
  VhostMemoryRegion regions[2] = {
      {0x0, 1 << 20, 0x7f0000000000, memfd.get(), 0},
      {0x100000000, 2 << 20, 0x7f0010000000, memfd.get(), 1 << 20},
  };
  VhostMsg got;
  {
    Pair p([&](FakeVhostBackend& b) {
      if (auto m = b.read()) got = std::move(*m);
    });
    ASSERT_TRUE(p.client->set_mem_table(regions).has_value());
  }
  ASSERT_EQ(got.request(), Request::kSetMemTable);
  ASSERT_EQ(got.header.size, 8u + 2 * sizeof(MemRegionWire));
  auto table = got.as<MemTableWire>();
  ASSERT_EQ(table.nregions, 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(table.regions[i].guest_phys_addr, regions[i].guest_addr);
    EXPECT_EQ(table.regions[i].memory_size, regions[i].size);
    EXPECT_EQ(table.regions[i].userspace_addr, regions[i].host_addr);
    EXPECT_EQ(table.regions[i].mmap_offset, regions[i].fd_offset);
  }
  ASSERT_EQ(got.fds.size(), 2u);  // one fd per region, in order
  for (auto& fd : got.fds) {
    struct stat st {};
    ASSERT_EQ(::fstat(fd.get(), &st), 0);
    EXPECT_EQ(st.st_ino, want.st_ino);  // the same memfd
    EXPECT_EQ(st.st_dev, want.st_dev);
  }
}

TEST(VhostUserClient, MemTableRefusesRegionsWithoutFdOrTooMany) {
  Pair p([](FakeVhostBackend& b) { b.read(); });
  VhostMemoryRegion anon{0, 4096, 0x1000, -1, 0};
  EXPECT_FALSE(p.client->set_mem_table(std::span(&anon, 1)).has_value());
  std::vector<VhostMemoryRegion> many(9, VhostMemoryRegion{0, 4096, 0x1000, 0, 0});
  EXPECT_FALSE(p.client->set_mem_table(many).has_value());
  EXPECT_FALSE(p.client->broken());  // refused before anything was sent
}

TEST(VhostUserClient, VringSetupMessagesCarryIndexValuesAndFds) {
  Fd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<VhostMsg> seen;
  {
    Pair p([&](FakeVhostBackend& b) {
      while (auto m = b.read()) seen.push_back(std::move(*m));
    });
    VhostUserClient& c = *p.client;
    ASSERT_TRUE(c.set_vring_num(1, 128).has_value());
    ASSERT_TRUE(c.set_vring_addr(1, {0x1000, 0x2000, 0x3000}).has_value());
    ASSERT_TRUE(c.set_vring_base(1, 0).has_value());
    ASSERT_TRUE(c.set_vring_kick(1, kick.get()).has_value());
    ASSERT_TRUE(c.set_vring_call(1, call.get()).has_value());
    ASSERT_TRUE(c.set_vring_call(0, -1).has_value());
    ASSERT_TRUE(c.set_vring_enable(1, true).has_value());
  }
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen[0].request(), Request::kSetVringNum);
  EXPECT_EQ(seen[0].as<VringState>().index, 1u);
  EXPECT_EQ(seen[0].as<VringState>().num, 128u);
  auto addr = seen[1].as<VringAddr>();
  EXPECT_EQ(addr.index, 1u);
  EXPECT_EQ(addr.desc_user_addr, 0x1000u);
  EXPECT_EQ(addr.avail_user_addr, 0x2000u);
  EXPECT_EQ(addr.used_user_addr, 0x3000u);
  EXPECT_EQ(seen[2].request(), Request::kSetVringBase);
  EXPECT_EQ(seen[3].request(), Request::kSetVringKick);
  EXPECT_EQ(seen[3].as<uint64_t>(), 1u);
  ASSERT_EQ(seen[3].fds.size(), 1u);
  // The backend's copy is the same eventfd: a signal through it reaches ours.
  uint64_t one = 1;
  ASSERT_EQ(::write(seen[3].fds[0].get(), &one, sizeof one), 8);
  uint64_t v = 0;
  EXPECT_EQ(::read(kick.get(), &v, sizeof v), 8);
  EXPECT_EQ(v, 1u);
  EXPECT_EQ(seen[4].request(), Request::kSetVringCall);
  EXPECT_EQ(seen[4].fds.size(), 1u);
  EXPECT_EQ(seen[5].as<uint64_t>(), kVringNoFd);  // index 0, no fd
  EXPECT_TRUE(seen[5].fds.empty());
  EXPECT_EQ(seen[6].as<VringState>().num, 1u);
}

TEST(VhostUserClient, GetVringBaseReturnsTheBackendsIndex) {
  Pair p([](FakeVhostBackend& b) {
    auto m = b.read();
    b.reply(Request::kGetVringBase, VringState{m->as<VringState>().index, 77});
  });
  auto r = p.client->get_vring_base(1);
  ASSERT_TRUE(r.has_value()) << r.error().what;
  EXPECT_EQ(*r, 77u);
}

// Each malformed reply to GET_FEATURES must fail the call, mark the client broken, and make
// the next call fail at once without touching the socket.
void expect_torn_down(std::function<void(FakeVhostBackend&)> bad_reply, const char* what) {
  SCOPED_TRACE(what);
  Pair p(
      [&](FakeVhostBackend& b) {
        if (b.read()) bad_reply(b);
      },
      std::chrono::milliseconds(300));
  auto r = p.client->get_features();
  EXPECT_FALSE(r.has_value());
  if (!r) {
    EXPECT_FALSE(r.error().what.empty());
  }
  EXPECT_TRUE(p.client->broken());
  EXPECT_FALSE(p.client->set_owner().has_value());
}

TEST(VhostUserClient, MalformedRepliesTearTheConnectionDown) {
  expect_torn_down([](FakeVhostBackend& b) { b.close(); }, "closed");
  expect_torn_down(
      [](FakeVhostBackend& b) {
        Header h{1, kVersion | kFlagReply, 8};
        b.write_raw(&h, 6);  // short header, then nothing
      },
      "short header");
  expect_torn_down(
      [](FakeVhostBackend& b) {
        Header h{1, kVersion | kFlagReply, 8};
        b.write_raw(&h, sizeof h);
        b.write_raw("abc", 3);
        b.close();
      },
      "short payload");
  expect_torn_down([](FakeVhostBackend& b) { b.reply(Request::kGetProtocolFeatures, uint64_t{1}); },
                   "wrong request id");
  expect_torn_down(
      [](FakeVhostBackend& b) {
        Header h{1, kVersion | kFlagReply, 0x10000000};
        b.write_raw(&h, sizeof h);
      },
      "oversized payload");
  expect_torn_down([](FakeVhostBackend& b) { b.reply(Request::kGetFeatures, uint32_t{1}); }, "undersized payload");
  expect_torn_down([](FakeVhostBackend& b) { b.reply(Request::kGetFeatures, uint64_t{1}, kVersion); }, "no reply flag");
  expect_torn_down([](FakeVhostBackend& b) { b.reply(Request::kGetFeatures, uint64_t{1}, 2 | kFlagReply); },
                   "version 2");
  expect_torn_down([](FakeVhostBackend&) {}, "no reply at all (timeout)");
  expect_torn_down(
      [](FakeVhostBackend& b) {
        // A well-formed reply that smuggles an fd: refused, and the fd is not leaked into us.
        Header h{1, kVersion | kFlagReply, 8};
        uint64_t v = 1;
        iovec iov[2] = {{&h, sizeof h}, {&v, sizeof v}};
        int fd = ::eventfd(0, EFD_CLOEXEC);
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
        ::sendmsg(b.fd(), &msg, MSG_NOSIGNAL);
        ::close(fd);
      },
      "unexpected fd");
}

TEST(VhostUserClient, FailedAckBreaksTheConnection) {
  Pair p([](FakeVhostBackend& b) {
    uint64_t features = kVersion1 | kFeatureProtocolFeatures;
    while (auto m = b.read()) {
      if (m->request() == Request::kGetFeatures)
        b.reply(Request::kGetFeatures, features);
      else if (m->request() == Request::kGetProtocolFeatures)
        b.reply(Request::kGetProtocolFeatures, kProtocolReplyAck);
      else if (m->request() == Request::kSetOwner)
        b.ack(*m, 0);
      else
        b.ack(*m, 1);  // everything else fails
    }
  });
  ASSERT_TRUE(p.client->negotiate().has_value());
  auto r = p.client->set_features(kVersion1);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().what.find("SET_FEATURES"), std::string::npos);
  EXPECT_TRUE(p.client->broken());
}

TEST(VhostUserReply, ParseReplyChecksEverything) {
  Header h{11, kVersion | kFlagReply, 8};
  VringState s{2, 5};
  std::byte buf[sizeof h + sizeof s];
  std::memcpy(buf, &h, sizeof h);
  std::memcpy(buf + sizeof h, &s, sizeof s);
  VringState out{};
  EXPECT_TRUE(parse_reply(buf, Request::kGetVringBase, std::as_writable_bytes(std::span(&out, 1))).has_value());
  EXPECT_EQ(out.num, 5u);
  EXPECT_FALSE(
      parse_reply(std::span(buf, sizeof buf - 1), Request::kGetVringBase, std::as_writable_bytes(std::span(&out, 1)))
          .has_value());
  EXPECT_FALSE(
      parse_reply(std::span(buf, 4), Request::kGetVringBase, std::as_writable_bytes(std::span(&out, 1))).has_value());
  EXPECT_FALSE(parse_reply(buf, Request::kGetFeatures, std::as_writable_bytes(std::span(&out, 1))).has_value());
  EXPECT_FALSE(check_ack(3, Request::kSetOwner).has_value());
  EXPECT_TRUE(check_ack(0, Request::kSetOwner).has_value());
}

}  // namespace
}  // namespace microvm
