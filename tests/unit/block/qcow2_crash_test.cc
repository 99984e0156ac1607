// Process-crash consistency: a writer killed at an arbitrary moment leaves an image whose
// on-disk metadata may leak clusters but never references a cluster twice or one with a
// refcount of zero, and whose flushed data is intact.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "devices/block/open_disk.h"
#include "devices/block/qcow2/qcow2_create.h"
#include "tests/unit/block/block_test_util.h"

namespace microvm {
namespace {

using namespace testing_block;

// A SIGKILLed process's io_uring is torn down after waitpid() returns (the kernel's io-wq
// workers let go of the file a moment later), and with it the OFD lock on the image. Waits
// until a reader may open the image, for at most 10 s.
void wait_until_image_unlocked(const std::string& img) {
  for (int i = 0; i < 200; ++i) {
    DiskOptions o;
    o.path = img;
    o.format = DiskFormat::kQcow2;
    o.read_only = true;
    if (open_disk(o)) return;
    ::usleep(50000);
  }
}

TEST(Qcow2Crash, KilledWriterLeavesOnlyLeaks) {
  TempDir dir;
  const uint64_t size = 16 << 20;
  for (int trial = 0; trial < 6; ++trial) {
    auto img = dir.file("crash" + std::to_string(trial) + ".qcow2");
    qcow2::CreateOptions co;
    co.size = size;
    co.cluster_bits = trial % 2 ? 12 : 16;
    ASSERT_TRUE(qcow2::create_image(img, co));
    int flushed[2];
    ASSERT_EQ(::pipe(flushed), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      DiskOptions o;
      o.path = img;
      o.format = DiskFormat::kQcow2;
      o.qcow2_cache_bytes = 1;  // constant eviction: metadata reaches the file all the time
      auto d = open_disk(o);
      if (!d) ::_exit(1);
      std::mt19937_64 rng(static_cast<uint64_t>(trial));
      // The first megabyte is written once and flushed: it must survive the crash.
      auto first = pattern(1 << 20, 99);
      if (do_write(**d, 0, first.data(), first.size()) != 1 << 20 || do_flush(**d) != 0) ::_exit(2);
      (void)!::write(flushed[1], "f", 1);
      for (uint64_t i = 0;; ++i) {
        uint64_t len = 512 * (1 + rng() % 128);
        uint64_t off = (1 << 20) + 512 * (rng() % ((size - (1 << 20) - len) / 512));
        auto p = pattern(len, static_cast<uint32_t>(i));
        switch (rng() % 8) {
          case 0:
            (void)do_discard(**d, off, len);
            break;
          case 1:
            (void)do_write_zeroes(**d, off, len, true);
            break;
          case 2:
            (void)do_flush(**d);
            break;
          default:
            (void)do_write(**d, off, p.data(), len);
            break;
        }
      }
    }
    char c;
    ASSERT_EQ(::read(flushed[0], &c, 1), 1);
    ::usleep(static_cast<useconds_t>(20000 + trial * 37000));
    ::kill(child, SIGKILL);
    int st = 0;
    ::waitpid(child, &st, 0);
    ::close(flushed[0]);
    ::close(flushed[1]);
    wait_until_image_unlocked(img);
    std::string out;
    int rc = qemu_img("check " + img, &out);
    EXPECT_TRUE(rc == 0 || rc == 3) << "trial " << trial << ": qemu-img check exit " << rc << "\n" << out;
    // The flushed first megabyte reads back intact.
    DiskOptions o;
    o.path = img;
    o.format = DiskFormat::kQcow2;
    o.read_only = true;
    auto d = open_disk(o);
    ASSERT_TRUE(d) << d.error().what;
    std::vector<uint8_t> back(1 << 20);
    ASSERT_EQ(do_read(**d, 0, back.data(), back.size()), 1 << 20);
    EXPECT_TRUE(back == pattern(1 << 20, 99)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace microvm
