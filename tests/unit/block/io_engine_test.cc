#include "devices/block/io_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "devices/block/sync_engine.h"
#include "devices/block/uring_engine.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using testing_block::pattern;
using testing_block::TempDir;

class EngineTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override {
    auto e = make_io_engine(GetParam(), nullptr, 32);
    ASSERT_TRUE(e) << e.error().what;
    engine_ = std::move(*e);
    path_ = dir_.file("data");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(::ftruncate(fd_, 1 << 20), 0);
  }
  void TearDown() override {
    engine_.reset();
    ::close(fd_);
  }
  int32_t wait(uint64_t tag) {
    for (int i = 0; i < 1000; ++i) {
      for (auto it = got_.begin(); it != got_.end(); ++it) {
        if (it->tag == tag) {
          int32_t r = it->result;
          got_.erase(it);
          return r;
        }
      }
      engine_->flush_submissions();
      pollfd p{engine_->completion_fd(), POLLIN, 0};
      ::poll(&p, 1, 50);
      BlockCompletion c[8];
      size_t n = engine_->reap(c);
      for (size_t k = 0; k < n; ++k) got_.push_back(c[k]);
      for (auto it = got_.begin(); it != got_.end(); ++it) {
        if (it->tag == tag) {
          int32_t r = it->result;
          got_.erase(it);
          return r;
        }
      }
    }
    ADD_FAILURE() << "no completion for " << tag;
    return -9999;
  }

  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<IoEngine> engine_;
  std::vector<BlockCompletion> got_;
};

TEST_P(EngineTest, WriteReadBackThroughSeveralIovecs) {
  auto data = pattern(3 * 4096, 7);
  iovec w[3] = {{data.data(), 4096}, {data.data() + 4096, 8192}, {data.data() + 12288, 0}};
  ASSERT_TRUE(engine_->write(fd_, 65536, w, 1));
  EXPECT_EQ(wait(1), 3 * 4096);
  std::vector<uint8_t> back(data.size());
  iovec r[2] = {{back.data(), 100}, {back.data() + 100, back.size() - 100}};
  ASSERT_TRUE(engine_->read(fd_, 65536, r, 2));
  EXPECT_EQ(wait(2), 3 * 4096);
  EXPECT_EQ(back, data);
  ASSERT_TRUE(engine_->sync(fd_, 3));
  EXPECT_EQ(wait(3), 0);
}

TEST_P(EngineTest, BatchedSubmissionsAllComplete) {
  // Twice the engine's depth (32): io_uring refuses the operation past its bound as busy,
  // queuing nothing, until completions make room; the sync engine has no bound.
  std::vector<std::vector<uint8_t>> bufs;
  for (int i = 0; i < 64; ++i) bufs.push_back(pattern(4096, i));
  int busy = 0;
  for (int i = 0; i < 64; ++i) {
    iovec v{bufs[i].data(), 4096};
    auto r = engine_->write(fd_, static_cast<uint64_t>(i) * 4096, {&v, 1}, 100 + i);
    if (!r) {
      ASSERT_EQ(r.error().code, kSubmitBusy) << r.error().what;
      ASSERT_EQ(i, 32) << "refused before the engine was full";
      EXPECT_FALSE(engine_->has_room());
      ++busy;
      engine_->drain();  // completes the first 32; they stay reapable
      EXPECT_TRUE(engine_->has_room());
      ASSERT_TRUE(engine_->write(fd_, static_cast<uint64_t>(i) * 4096, {&v, 1}, 100 + i));
    }
  }
  EXPECT_EQ(busy, GetParam() == EngineKind::kIoUring ? 1 : 0);
  engine_->drain();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(wait(100 + i), 4096);
  std::vector<uint8_t> all(64 * 4096);
  ASSERT_EQ(::pread(fd_, all.data(), all.size(), 0), static_cast<ssize_t>(all.size()));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(0, std::memcmp(all.data() + i * 4096, bufs[i].data(), 4096));
}

TEST_P(EngineTest, ReadPastEndOfFileIsAnErrorNotAShortSuccess) {
  std::vector<uint8_t> buf(8192);
  iovec v{buf.data(), buf.size()};
  // The file is 1 MiB: the last 4 KiB are readable, the rest is past EOF.
  ASSERT_TRUE(engine_->read(fd_, (1 << 20) - 4096, {&v, 1}, 9));
  EXPECT_EQ(wait(9), -EIO);
}

TEST_P(EngineTest, DiscardAndWriteZeroesReadAsZero) {
  auto data = pattern(1 << 20, 3);
  ASSERT_EQ(::pwrite(fd_, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  ASSERT_TRUE(engine_->write_zeroes(fd_, 4096, 8192, false, 1));
  EXPECT_EQ(wait(1), 0);
  ASSERT_TRUE(engine_->write_zeroes(fd_, 65536, 65536, true, 2));
  EXPECT_EQ(wait(2), 0);
  ASSERT_TRUE(engine_->discard(fd_, 262144, 65536, 3));
  EXPECT_EQ(wait(3), 0);
  std::vector<uint8_t> back(1 << 20);
  ASSERT_EQ(::pread(fd_, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  for (size_t i = 0; i < back.size(); ++i) {
    bool zeroed = (i >= 4096 && i < 12288) || (i >= 65536 && i < 131072);
    if (zeroed) {
      ASSERT_EQ(back[i], 0) << i;
    } else if (!(i >= 262144 && i < 327680)) {  // discarded bytes: unspecified
      ASSERT_EQ(back[i], data[i]) << i;
    }
  }
  struct stat st {};
  ASSERT_EQ(::fstat(fd_, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);  // KEEP_SIZE
}

TEST_P(EngineTest, ErrorsFromTheKernelAreReported) {
  std::vector<uint8_t> buf(4096);
  iovec v{buf.data(), buf.size()};
  int ro = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(ro, 0);
  ASSERT_TRUE(engine_->write(ro, 0, {&v, 1}, 5));
  EXPECT_EQ(wait(5), -EBADF);
  ::close(ro);
}

TEST_P(EngineTest, CompleteNowSignalsTheEventfd) {
  engine_->complete_now(77, -EINVAL);
  pollfd p{engine_->completion_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 1000), 1);
  EXPECT_EQ(wait(77), -EINVAL);
}

INSTANTIATE_TEST_SUITE_P(Engines, EngineTest, ::testing::Values(EngineKind::kIoUring, EngineKind::kSync),
                         [](const auto& info) {
                           return std::string(info.param == EngineKind::kSync ? "Sync" : "IoUring");
                         });

// Short transfers: a pipe delivers at most what was written, so a read of more than is
// available comes back short and the engine must continue it, not report success early.
TEST(UringEngine, ShortReadIsContinuedUntilComplete) {
  auto e = UringEngine::create({.queue_depth = 8});
  ASSERT_TRUE(e) << e.error().what;
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::vector<uint8_t> buf(8192);
  iovec v{buf.data(), buf.size()};
  // Offset is ignored for pipes (-1 would mean "current position"; 0 is accepted for streams by readv).
  ASSERT_TRUE((*e)->read(p[0], 0, {&v, 1}, 1));
  (*e)->flush_submissions();
  auto a = pattern(3000, 1), b = pattern(5192, 2);
  ASSERT_EQ(::write(p[1], a.data(), a.size()), 3000);
  // Let the first (short) completion arrive and be resubmitted.
  for (int i = 0; i < 20; ++i) {
    BlockCompletion c[2];
    ::usleep(5000);
    EXPECT_EQ((*e)->reap(c), 0u);
  }
  ASSERT_EQ(::write(p[1], b.data(), b.size()), 5192);
  BlockCompletion c[2];
  size_t n = 0;
  for (int i = 0; i < 200 && n == 0; ++i) {
    ::usleep(5000);
    n = (*e)->reap(c);
  }
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(c[0].result, 8192);
  EXPECT_EQ(0, std::memcmp(buf.data(), a.data(), 3000));
  EXPECT_EQ(0, std::memcmp(buf.data() + 3000, b.data(), 5192));
  ::close(p[1]);
  ::close(p[0]);
}

TEST(UringEngine, ShortWriteNeverReportsSuccess) {
  auto e = UringEngine::create({.queue_depth = 8});
  ASSERT_TRUE(e) << e.error().what;
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::close(p[0]);  // writes fail with EPIPE (SIGPIPE ignored below)
  signal(SIGPIPE, SIG_IGN);
  std::vector<uint8_t> buf(4096);
  iovec v{buf.data(), buf.size()};
  ASSERT_TRUE((*e)->write(p[1], 0, {&v, 1}, 1));
  (*e)->drain();
  BlockCompletion c[2];
  ASSERT_EQ((*e)->reap(c), 1u);
  EXPECT_EQ(c[0].result, -EPIPE);
  ::close(p[1]);
}

}  // namespace
}  // namespace microvm
