// Crash consistency: firmware/blk_crash_writer writes sequence-numbered 4 KiB blocks
// and flushes, printing "FLUSHED <F>" after every successful flush; we SIGKILL microvm
// at a random moment (run_microvm's timeout kills with SIGKILL) and check on the host
// that every write the guest saw flushed survived, that every 512-byte sector (the device's
// logical block) is whole, its previous content or a later write's, and (qcow2) that `qemu-img check` finds no
// corruption. 100 cycles per format on one image, each with a new epoch so verification stays exact; cycles alternate
// transport mmio/pci and cache writeback/none. scripts/crash-harness.sh is the same harness for long runs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/support/vm_process.h"

namespace microvm::testing {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint32_t kWords = kBlock / 4;
constexpr uint32_t kBlocks = 256;
constexpr uint32_t kMagic = 0x48535243;  // "CRSH"
constexpr int kCycles = 100;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Waits (up to 2 s) until no process holds a write lock on the image, and reads it under a
// shared OFD lock. A SIGKILLed VMM's io_uring workers can still be finishing queued writes
// after the process is gone (its image lock lingers until they are), and a read racing such a
// write may see a sector half copied: a torn sector the device never produced.
std::string read_all_unlocked(const std::string& path, int* lock_waits) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  for (int i = 0; i < 40 && fcntl(fd, F_OFD_SETLK, &fl) != 0; i++) {
    ++*lock_waits;
    usleep(50'000);
  }
  std::string bytes = read_all(path);
  close(fd);
  return bytes;
}

uint32_t word(std::string_view blk, uint32_t i) {
  uint32_t v;
  std::memcpy(&v, blk.data() + 4 * i, 4);  // x86-64 host: little endian like the guest
  return v;
}

struct Written {
  uint32_t epoch = 0, seq = 0;
};
uint32_t fill_word(uint32_t) { return 0; }
uint32_t sector_check(uint32_t e, uint32_t s, uint32_t b, uint32_t i) {
  return ((e * 0x9E3779B1u) ^ (s * 0x85EBCA6Bu) ^ (b * 0xC2B2AE35u) ^ (i * 0x27D4EB2Fu)) + 0x165667B1u;
}
constexpr uint32_t kSectorWords = 128, kHdrWords = 6;
// Mirrors fill_block() in firmware/blk_crash_writer/main.c: every 512-byte sector starts
// with magic, epoch, seq, block, sector index, check; every other word is zero.
// The (epoch, seq) of sector `i` of block `b`, if it is whole.
std::optional<Written> parse_sector(std::string_view blk, uint32_t b, uint32_t i) {
  const uint32_t o = i * kSectorWords;
  Written got{word(blk, o + 1), word(blk, o + 2)};
  if (word(blk, o) != kMagic || word(blk, o + 3) != b || word(blk, o + 4) != i ||
      word(blk, o + 5) != sector_check(got.epoch, got.seq, b, i))
    return std::nullopt;
  for (uint32_t j = kHdrWords; j < kSectorWords; j++) {
    if (word(blk, o + j) != fill_word(o + j)) return std::nullopt;
  }
  return got;
}

// The (epoch, seq) of a whole block for index `b`, else nothing (a block torn at a sector
// boundary has disagreeing headers).
std::optional<Written> parse_block(std::string_view blk, uint32_t b) {
  if (blk.size() != kBlock) return std::nullopt;
  std::optional<Written> first;
  for (uint32_t i = 0; i < kBlock / 512; i++) {
    auto got = parse_sector(blk, b, i);
    if (!got || (first && (got->epoch != first->epoch || got->seq != first->seq))) return std::nullopt;
    first = got;
  }
  return first;
}

struct Layout {
  uint32_t epoch, stride, offset;
  uint32_t block_of(uint32_t seq) const { return (seq * stride + offset) & (kBlocks - 1); }
  // The last seq in [1, flushed] that wrote block b, or 0.
  uint32_t last_write_upto(uint32_t b, uint32_t flushed) const {
    for (uint32_t k = 0; k < kBlocks && k < flushed; k++) {
      if (block_of(flushed - k) == b) return flushed - k;
    }
    return 0;
  }
};

struct Verdict {
  int required = 0, lost = 0, torn = 0, newer = 0;
  int sector_mixed = 0;  // blocks an unacknowledged write reached in part (allowed, see verify())
  std::string first_problem;
};

// `image` after the kill against `baseline` (the image before this cycle).
Verdict verify(const std::string& image, const std::string& baseline, const Layout& l, uint32_t flushed) {
  Verdict v;
  if (image.size() < kBlocks * kBlock || baseline.size() < kBlocks * kBlock) {
    v.torn = 1;
    v.first_problem = "image shorter than expected: " + std::to_string(image.size());
    return v;
  }
  for (uint32_t b = 0; b < kBlocks; b++) {
    std::string_view blk = std::string_view(image).substr(size_t{b} * kBlock, kBlock);
    std::string_view old = std::string_view(baseline).substr(size_t{b} * kBlock, kBlock);
    uint32_t req = l.last_write_upto(b, flushed);
    if (req == 0 && blk == old) continue;
    if (req != 0) v.required++;
    auto got = parse_block(blk, b);
    if (got && got->epoch == l.epoch && l.block_of(got->seq) == b && got->seq >= req) {
      if (got->seq > req) v.newer++;
      continue;
    }
    // A write the guest never saw complete may have landed in part: the device's atomic unit is
    // its 512-byte logical block (blk_size), and SIGKILL can stop a host write between pages.
    // So each sector on its own must be the old one (when no flushed write is due) or a whole
    // sector of this epoch's writes to this block, no older than the flushed one.
    bool sectors_ok = true;
    for (uint32_t i = 0; i < kBlock / 512 && sectors_ok; i++) {
      if (req == 0 && blk.substr(size_t{i} * 512, 512) == old.substr(size_t{i} * 512, 512)) continue;
      auto sec = parse_sector(blk, b, i);
      sectors_ok = sec && sec->epoch == l.epoch && l.block_of(sec->seq) == b && sec->seq >= req;
    }
    if (sectors_ok) {
      v.sector_mixed++;
      continue;
    }
    if (req != 0) {
      v.lost++;
      if (v.first_problem.empty())
        v.first_problem = "block " + std::to_string(b) + ": flushed seq " + std::to_string(req) + " lost, found " +
                          (got ? "epoch " + std::to_string(got->epoch) + " seq " + std::to_string(got->seq)
                               : std::string("invalid bytes"));
    } else {
      v.torn++;
      if (v.first_problem.empty())
        v.first_problem = "block " + std::to_string(b) + ": neither old content nor whole sectors";
    }
  }
  return v;
}

std::string make_block(uint32_t epoch, uint32_t seq, uint32_t b) {
  uint32_t w[kWords];
  for (uint32_t i = 0; i < kWords; i++) w[i] = fill_word(i);
  for (uint32_t i = 0; i < kBlock / 512; i++) {
    uint32_t h[kHdrWords] = {kMagic, epoch, seq, b, i, sector_check(epoch, seq, b, i)};
    std::memcpy(&w[i * kSectorWords], h, sizeof h);
  }
  return std::string(reinterpret_cast<const char*>(w), kBlock);
}

// The verifier must be able to fail: a lost flushed write, an older seq and a torn
// block are each reported. (No VM involved.)
TEST(CrashVerifier, DetectsLossAndTornBlocks) {
  Layout l{7, 5, 3};
  std::string base(kBlocks * kBlock, '\0');
  std::string img = base;
  for (uint32_t s = 1; s <= 10; s++)
    img.replace(size_t{l.block_of(s)} * kBlock, kBlock, make_block(7, s, l.block_of(s)));
  Verdict ok = verify(img, base, l, 10);
  EXPECT_EQ(ok.lost + ok.torn, 0) << ok.first_problem;
  EXPECT_EQ(ok.required, 10);
  Verdict unflushed = verify(img, base, l, 4);  // 5..10 landed without a flush: fine
  EXPECT_EQ(unflushed.lost + unflushed.torn, 0) << unflushed.first_problem;
  EXPECT_EQ(unflushed.newer, 6);

  std::string lost = img;
  lost.replace(size_t{l.block_of(6)} * kBlock, kBlock, kBlock, '\0');
  EXPECT_EQ(verify(lost, base, l, 10).lost, 1);
  std::string stale = img;  // another epoch's content where this epoch's flushed write belongs
  stale.replace(size_t{l.block_of(6)} * kBlock, kBlock, make_block(6, 6, l.block_of(6)));
  EXPECT_EQ(verify(stale, base, l, 10).lost, 1);
  std::string torn = img;  // the last four sectors of seq 9's block still hold the old bytes
  torn.replace(size_t{l.block_of(9)} * kBlock + 2048, 2048, base, size_t{l.block_of(9)} * kBlock + 2048, 2048);
  Verdict partial = verify(torn, base, l, 8);  // seq 9 was never flushed: a partial landing is allowed
  EXPECT_EQ(partial.torn + partial.lost, 0) << partial.first_problem;
  EXPECT_EQ(partial.sector_mixed, 1);
  EXPECT_EQ(verify(torn, base, l, 10).lost, 1);  // flushed: it must be whole
  std::string split = img;                       // part of a sector old: below the device's atomic unit
  split.replace(size_t{l.block_of(9)} * kBlock + 512, 16, base, size_t{l.block_of(9)} * kBlock + 512, 16);
  EXPECT_EQ(verify(split, base, l, 8).torn, 1);
  std::string flipped = img;  // one bit anywhere in a block
  flipped[size_t{l.block_of(9)} * kBlock + 3001] ^= 4;
  EXPECT_EQ(verify(flipped, base, l, 8).torn, 1);
}

// run_process does not search PATH.
std::string qemu_img() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t at = 0; at <= dirs.size();) {
    size_t end = dirs.find(':', at);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(at, end - at) + "/qemu-img";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  return "/usr/bin/qemu-img";
}

// After SIGKILL the image's OFD lock can outlive the reaped process for a moment (the
// kernel tears an io_uring instance down asynchronously, and it still holds the file).
// That is no corruption: wait for it and count the waits.
bool lock_busy(const VmRunResult& r) {
  return r.exit_code == 1 &&
         (r.err.find("Failed to lock") != std::string::npos || r.err.find("is in use by") != std::string::npos);
}
VmRunResult run_qemu_img(const std::vector<std::string>& args, int* lock_waits) {
  VmRunResult r = run_process(qemu_img(), args);
  for (int i = 0; i < 40 && lock_busy(r); i++) {
    ++*lock_waits;
    usleep(50'000);
    r = run_process(qemu_img(), args);
  }
  return r;
}

uint32_t last_flushed(const VmRunResult& r, int* lines) {
  auto flushed = r.lines_with_prefix("FLUSHED ");
  *lines = static_cast<int>(flushed.size());
  if (flushed.empty()) return 0;
  return static_cast<uint32_t>(std::strtoul(flushed.back().c_str() + 8, nullptr, 10));
}

class CrashConsistencyTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { REQUIRE_KVM(); }
  TempDir dir_;
};

TEST_P(CrashConsistencyTest, FlushedWritesSurviveSigkill) {
  const std::string format = GetParam();
  const bool qcow2 = format == "qcow2";
  std::string img = dir_.path() + "/disk." + format;
  std::string raw_view = dir_.path() + "/view.raw";
  if (qcow2) {
    VmRunResult c = run_process(qemu_img(), {"create", "-q", "-f", "qcow2", img, std::to_string(kBlocks * kBlock)});
    ASSERT_EQ(c.exit_code, 0) << c.describe();
  } else {
    ASSERT_FALSE(dir_.write_file("disk.raw", std::string(kBlocks * kBlock, '\0')).empty());
  }
  std::string baseline(kBlocks * kBlock, '\0');
  std::mt19937 rng(qcow2 ? 2002 : 1001);
  int flushed_cycles = 0, total_flush_lines = 0, leaks = 0, killed = 0, lock_waits = 0, partial_landings = 0;
  double seconds = 0;
  for (int c = 1; c <= kCycles; c++) {
    std::string transport = c % 2 ? "mmio" : "pci";
    std::string cache = (c / 2) % 2 ? "none" : "writeback";
    Layout l{static_cast<uint32_t>(c), static_cast<uint32_t>(rng() % 128 * 2 + 1),
             static_cast<uint32_t>(rng() % kBlocks)};
    auto kill_after = std::chrono::milliseconds(150 + rng() % 351);
    std::string cmdline = "console=ttyS0 crash.transport=" + transport + " crash.epoch=" + std::to_string(c) +
                          " crash.seed=" + std::to_string(rng()) + " crash.blocks=" + std::to_string(kBlocks) +
                          " crash.stride=" + std::to_string(l.stride) + " crash.offset=" + std::to_string(l.offset) +
                          " crash.depth=" + std::to_string(1 + rng() % 6);
    VmRunOptions opts;
    opts.timeout = kill_after;
    std::vector<std::string> args = {"run",
                                     "--kernel",
                                     firmware_path("blk_crash_writer"),
                                     "--memory",
                                     "64M",
                                     "--no-rng",
                                     "--transport",
                                     transport,
                                     "--disk",
                                     img + ",format=" + format + ",cache=" + cache,
                                     "--cmdline",
                                     cmdline};
    VmRunResult r = run_microvm(args, opts);
    for (int i = 0; i < 40 && lock_busy(r); i++) {
      lock_waits++;
      usleep(50'000);
      r = run_microvm(args, opts);
    }
    seconds += r.seconds;
    // The writer never stops on its own: anything but our SIGKILL is a VMM failure.
    ASSERT_TRUE(r.timed_out) << "cycle " << c << "\n" << r.describe();
    killed++;
    ASSERT_TRUE(r.lines_with_prefix("CRASH FAIL").empty()) << "cycle " << c << "\n" << r.describe();
    int lines = 0;
    uint32_t flushed = last_flushed(r, &lines);
    total_flush_lines += lines;
    if (flushed > 0) flushed_cycles++;

    std::string image;
    if (qcow2) {
      // 0: clean, 3: leaked clusters only (allowed after a kill); 2: corruption.
      VmRunResult chk = run_qemu_img({"check", "-q", "-f", "qcow2", img}, &lock_waits);
      ASSERT_TRUE(chk.exit_code == 0 || chk.exit_code == 3) << "cycle " << c << " qemu-img check\n" << chk.describe();
      if (chk.exit_code == 3) leaks++;
      VmRunResult conv = run_qemu_img({"convert", "-f", "qcow2", "-O", "raw", img, raw_view}, &lock_waits);
      ASSERT_EQ(conv.exit_code, 0) << conv.describe();
      image = read_all(raw_view);
    } else {
      image = read_all_unlocked(img, &lock_waits);
    }
    Verdict v = verify(image, baseline, l, flushed);
    ASSERT_EQ(v.lost, 0) << "cycle " << c << " (" << transport << ", cache=" << cache << ", last FLUSHED " << flushed
                         << "): " << v.first_problem << "\n"
                         << r.describe();
    ASSERT_EQ(v.torn, 0) << "cycle " << c << ": " << v.first_problem;
    partial_landings += v.sector_mixed;
    baseline = std::move(image);
  }
  RecordProperty("flushed_cycles", flushed_cycles);
  RecordProperty("leaks", leaks);
  RecordProperty("lock_waits", lock_waits);
  RecordProperty("partial_landings", partial_landings);
  std::printf(
      "crash consistency %s: cycles=%d killed=%d flushed_cycles=%d flush_lines=%d leaks=%d lock_waits=%d "
      "partial_landings=%d vm_s_per_cycle=%.3f\n",
      format.c_str(), kCycles, killed, flushed_cycles, total_flush_lines, leaks, lock_waits, partial_landings,
      seconds / kCycles);
  // Most kills must land after at least one flush, or the test proves nothing.
  EXPECT_GE(flushed_cycles, kCycles / 4) << "too few cycles reached a flush before the kill";
}

INSTANTIATE_TEST_SUITE_P(Formats, CrashConsistencyTest, ::testing::Values("raw", "qcow2"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace microvm::testing
