// Allocating writes into fresh file space (clusters that read as zeroes) write only the guest's
// bytes, through the I/O engine, many in flight at once, and contiguous pieces of a request
// reach the engine joined. What lands must be exactly what qemu reads back, the image must stay
// clean for qemu-img check, and a cluster with backing data under it must still be copied.
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_backend.h"
#include "devices/block/qcow2/qcow2_chain.h"
#include "tests/testing/faulty_engine.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;

constexpr uint64_t kCluster = 64 << 10;

std::unique_ptr<BlockBackend> open_qcow2(const std::string& path, EngineKind engine, CacheMode cache,
                                         const std::string& backing = "") {
  DiskOptions o;
  o.backing = backing;
  o.path = path;
  o.format = DiskFormat::kQcow2;
  o.engine = engine;
  o.cache = cache;
  auto d = open_disk(o);
  EXPECT_TRUE(d.has_value()) << d.error().what;
  return d ? std::move(*d) : nullptr;
}

// Bytes of the file the filesystem holds as written data: allocated blocks minus unwritten
// extents (FIEMAP), or all allocated blocks where FIEMAP is not supported.
uint64_t written_bytes(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st {};
  EXPECT_EQ(::fstat(fd.get(), &st), 0);
  const uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  constexpr unsigned kExtents = 512;
  std::vector<uint8_t> buf(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
  uint64_t unwritten = 0, start = 0;
  for (;;) {
    std::fill(buf.begin(), buf.end(), 0);
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kExtents;
    if (::ioctl(fd.get(), FS_IOC_FIEMAP, fm) != 0) return allocated;
    if (fm->fm_mapped_extents == 0) break;
    bool last = false;
    for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) unwritten += e.fe_length;
      start = e.fe_logical + e.fe_length;
      last = last || (e.fe_flags & FIEMAP_EXTENT_LAST);
    }
    if (last) break;
  }
  return allocated > unwritten ? allocated - unwritten : 0;
}

// Writes every (offset, data) of `writes` with all of them in flight at once.
void write_all_in_flight(BlockBackend& b, const std::vector<std::pair<uint64_t, std::vector<uint8_t>>>& writes) {
  std::vector<iovec> v(writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    v[i] = {const_cast<uint8_t*>(writes[i].second.data()), writes[i].second.size()};
    ASSERT_TRUE(b.submit_write(writes[i].first, {&v[i], 1}, 500000 + i).has_value()) << "write " << i;
  }
  b.flush_submissions();
  for (size_t i = 0; i < writes.size(); ++i)
    EXPECT_EQ(wait_for(b, 500000 + i), static_cast<int32_t>(writes[i].second.size())) << "write " << i;
}

class Qcow2FreshAlloc : public ::testing::TestWithParam<CacheMode> {};

TEST_P(Qcow2FreshAlloc, ScatteredAndSequentialWritesMatchQemuAndStaySparse) {
  TempDir dir;
  auto q = dir.file("fresh.qcow2"), raw = dir.file("out.raw");
  constexpr uint64_t kSize = 64 << 20;
  std::string out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=64k " + q + " 64M", &out), 0) << out;
  std::vector<uint8_t> expect(kSize, 0);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> batch;
  // 48 scattered 4 KiB writes, one per fresh cluster (at varying places inside it), ...
  std::mt19937_64 rng(18);
  for (uint32_t i = 0; i < 48; ++i) {
    uint64_t cluster = 16 + i * 7 + rng() % 5;  // distinct, never cluster 0..15
    uint64_t off = cluster * kCluster + 4096 * (rng() % 16);
    batch.push_back({off, pattern(4096, i)});
  }
  // ... one 1 MiB sequential write over 16 fresh clusters (a run) ...
  batch.push_back({0, pattern(1 << 20, 100)});
  for (auto& [off, data] : batch) std::memcpy(expect.data() + off, data.data(), data.size());
  {
    auto b = open_qcow2(q, EngineKind::kIoUring, GetParam());
    ASSERT_TRUE(b);
    write_all_in_flight(*b, batch);
    // ... then partial writes into clusters the batch allocated (in place) and back to back.
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> again;
    for (uint32_t i = 0; i < 8; ++i)
      again.push_back({batch[i].first + 512 * ((i % 7) + 1) - 512, pattern(512, 200 + i)});
    write_all_in_flight(*b, again);
    for (auto& [off, data] : again) std::memcpy(expect.data() + off, data.data(), data.size());
    ASSERT_EQ(do_flush(*b), 0);
    // Our own read-back, sequential 1 MiB reads joined across clusters.
    std::vector<uint8_t> back(kSize);
    for (uint64_t off = 0; off < kSize; off += 1 << 20)
      ASSERT_EQ(do_read(*b, off, back.data() + off, 1 << 20), 1 << 20) << off;
    EXPECT_TRUE(back == expect) << "our own read-back";
  }
  EXPECT_EQ(qemu_img("check " + q, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -O raw " + q + " " + raw, &out), 0) << out;
  EXPECT_TRUE(read_file(raw) == expect) << "qemu-img's read-back";
  // 48 x 4 KiB plus 1 MiB of guest data, metadata and the image's own tables: writing each
  // scattered write's whole 64 KiB cluster would take over 4 MiB. The file grows by runs of
  // allocated but unwritten blocks (they read as zeroes), so what counts is the written part.
  EXPECT_LT(written_bytes(q), 3u << 20) << "the fresh clusters were written whole";
  // The run allocated ahead of the last cluster (32 MiB) is cut at close: about 70 clusters
  // are in use.
  struct stat st {};
  ASSERT_EQ(::stat(q.c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_size), 8u << 20) << "the unused tail was not trimmed at close";
}

TEST_P(Qcow2FreshAlloc, ClusterOverBackingDataIsStillCopied) {
  TempDir dir;
  auto base = dir.file("base.qcow2"), top = dir.file("top.qcow2"), raw = dir.file("out.raw");
  std::string out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=64k " + base + " 4M", &out), 0) << out;
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0x5a 0 2M' " + base + " >/dev/null", &out), 0) << out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=64k -b " + base + " -F qcow2 " + top + " 4M", &out), 0) << out;
  std::vector<uint8_t> expect(4 << 20, 0);
  std::memset(expect.data(), 0x5a, 2 << 20);
  // One write over backing data, one past the backing data (its cluster reads as zeroes).
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> batch = {{kCluster + 8192, pattern(4096, 1)},
                                                                  {(3 << 20) + 4096, pattern(4096, 2)}};
  for (auto& [off, data] : batch) std::memcpy(expect.data() + off, data.data(), data.size());
  {
    auto b = open_qcow2(top, EngineKind::kIoUring, GetParam(), base);
    ASSERT_TRUE(b);
    write_all_in_flight(*b, batch);
    ASSERT_EQ(do_flush(*b), 0);
  }
  EXPECT_EQ(qemu_img("check " + top, &out), 0) << out;
  ASSERT_EQ(qemu_img("convert -O raw " + top + " " + raw, &out), 0) << out;
  EXPECT_TRUE(read_file(raw) == expect) << "qemu-img's read-back";
}

// A transfer over consecutive host clusters reaches the engine as one operation, not one per
// cluster; a hole in the middle splits it.
TEST(Qcow2JoinedPieces, SequentialTransferOverConsecutiveClustersIsOneEngineOperation) {
  TempDir dir;
  auto q = dir.file("seq.qcow2");
  std::string out;
  ASSERT_EQ(qemu_img("create -q -f qcow2 -o cluster_size=64k " + q + " 4M", &out), 0) << out;
  // One 2 MiB write: qemu places its 32 clusters consecutively.
  ASSERT_EQ(run("qemu-io -f qcow2 -c 'write -P 0x33 0 2M' " + q + " >/dev/null", &out), 0) << out;
  auto inner = make_io_engine(EngineKind::kIoUring, nullptr, 64);
  ASSERT_TRUE(inner.has_value()) << inner.error().what;
  auto faulty = FaultyEngine::create(std::move(*inner));
  ASSERT_TRUE(faulty.has_value());
  FaultyEngine* engine = faulty->get();
  DiskOptions o;
  o.path = q;
  o.format = DiskFormat::kQcow2;
  auto img = qcow2::open_chain(o);
  ASSERT_TRUE(img.has_value()) << img.error().what;
  Qcow2Backend b(std::move(*faulty), std::move(*img));

  std::vector<uint8_t> buf(1 << 20);
  ASSERT_EQ(do_read(b, 0, buf.data(), buf.size()), 1 << 20);
  EXPECT_EQ(engine->seen(FaultOp::kRead), 1u) << "16 consecutive clusters were read piece by piece";
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t x) { return x == 0x33; }));
  auto data = pattern(1 << 20, 5);
  ASSERT_EQ(do_write(b, 1 << 20, data.data(), data.size()), 1 << 20);
  EXPECT_EQ(engine->seen(FaultOp::kWrite), 1u) << "16 consecutive clusters were written piece by piece";
  // Across the end of the allocated area: the unallocated half reads as zeroes without I/O.
  std::vector<uint8_t> tail(1 << 20);
  ASSERT_EQ(do_read(b, (2 << 20) - (512 << 10), tail.data(), tail.size()), 1 << 20);
  EXPECT_EQ(engine->seen(FaultOp::kRead), 2u);
  EXPECT_TRUE(std::equal(tail.begin(), tail.begin() + (512 << 10), data.begin() + (512 << 10)));
  EXPECT_TRUE(std::all_of(tail.begin() + (512 << 10), tail.end(), [](uint8_t x) { return x == 0; }));
}

INSTANTIATE_TEST_SUITE_P(Cache, Qcow2FreshAlloc, ::testing::Values(CacheMode::kWriteback, CacheMode::kNone),
                         [](const ::testing::TestParamInfo<CacheMode>& p) {
                           return p.param == CacheMode::kNone ? std::string("none") : std::string("writeback");
                         });

}  // namespace
}  // namespace microvm
