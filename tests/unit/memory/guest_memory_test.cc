#include "memory/guest_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace microvm {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::unique_ptr<GuestMemory> anon(uint64_t size) {
  auto m = GuestMemory::create_anonymous(size);
  EXPECT_TRUE(m) << m.error().what;
  return std::move(*m);
}

// Two regions with a gap: [0, 1 MiB) and [4 MiB, 6 MiB).
std::unique_ptr<GuestMemory> two_regions(MemoryBacking backing = MemoryBacking::kAnonymous) {
  MemoryLayoutEntry layout[] = {{GuestAddress(0), kMiB}, {GuestAddress(4 * kMiB), 2 * kMiB}};
  auto m = GuestMemory::create(layout, backing);
  EXPECT_TRUE(m) << m.error().what;
  return std::move(*m);
}

// Protection string ("---p", "rw-p") of the /proc/self/maps line containing `addr`.
std::string protection_at(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  auto a = reinterpret_cast<unsigned long>(addr);
  while (std::getline(maps, line)) {
    unsigned long lo, hi;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi) return perms;
  }
  return "unmapped";
}

TEST(GuestMemory, AnonymousSingleRegion) {
  auto m = anon(64 * kMiB);
  ASSERT_EQ(m->regions().size(), 1u);
  EXPECT_EQ(m->regions()[0].guest_base, GuestAddress(0));
  EXPECT_EQ(m->regions()[0].size, 64 * kMiB);
  EXPECT_EQ(m->total_size(), 64 * kMiB);
  EXPECT_EQ(m->fd(), -1);
  EXPECT_EQ(m->regions()[0].fd, -1);
  EXPECT_EQ(m->backing(), MemoryBacking::kAnonymous);
}

TEST(GuestMemory, RejectsBadSizesAndOverlaps) {
  EXPECT_FALSE(GuestMemory::create_anonymous(0));
  EXPECT_FALSE(GuestMemory::create_anonymous(4097));
  MemoryLayoutEntry overlap[] = {{GuestAddress(0), 2 * kMiB}, {GuestAddress(kMiB), 2 * kMiB}};
  auto r = GuestMemory::create(overlap, MemoryBacking::kAnonymous);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("overlap"), std::string::npos);
  MemoryLayoutEntry huge[] = {{GuestAddress(0), 1ull << 63}, {GuestAddress(1ull << 63), 1ull << 63}};
  auto o = GuestMemory::create(huge, MemoryBacking::kAnonymous);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().what.find("overflows"), std::string::npos);
}

TEST(GuestMemory, TranslateBounds) {
  auto m = anon(64 * kMiB);
  const uint64_t end = 64 * kMiB;
  // Last byte is fine; one more crosses the end.
  auto last = m->translate(GuestAddress(end - 1), 1);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->data(), m->regions()[0].host + end - 1);
  EXPECT_EQ(last->size(), 1u);
  EXPECT_FALSE(m->translate(GuestAddress(end - 1), 2));
  EXPECT_FALSE(m->translate(GuestAddress(end - 8), 9));
  EXPECT_TRUE(m->translate(GuestAddress(0), end));
  EXPECT_FALSE(m->translate(GuestAddress(0), end + 1));
  // Not in RAM at all.
  auto out = m->translate(GuestAddress(end), 1);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, EFAULT);
  EXPECT_FALSE(m->translate(GuestAddress(end), 0));  // even empty: the address itself is not RAM
  // len 0 at a valid address is an empty span there.
  auto empty = m->translate(GuestAddress(4096), 0);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(empty->data(), m->regions()[0].host + 4096);
  // Lengths that would wrap a naive addr + len check.
  EXPECT_FALSE(m->translate(GuestAddress(4096), UINT64_MAX));
  EXPECT_FALSE(m->translate(GuestAddress(4096), UINT64_MAX - 4095));  // 4096 + len == 2^64 -> 0
  EXPECT_FALSE(m->translate(GuestAddress(UINT64_MAX), 1));
  EXPECT_FALSE(m->translate(GuestAddress(UINT64_MAX - 1), 2));
}

TEST(GuestMemory, TwoRegionsWithGap) {
  auto m = two_regions();
  ASSERT_EQ(m->regions().size(), 2u);
  EXPECT_EQ(m->total_size(), 3 * kMiB);
  EXPECT_TRUE(m->translate(GuestAddress(kMiB - 4), 4));
  EXPECT_FALSE(m->translate(GuestAddress(kMiB - 4), 5));  // runs into the gap
  EXPECT_FALSE(m->translate(GuestAddress(kMiB), 1));      // in the gap
  EXPECT_FALSE(m->translate(GuestAddress(4 * kMiB - 1), 1));
  auto second = m->translate(GuestAddress(4 * kMiB), 2 * kMiB);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->data(), m->regions()[1].host);
  EXPECT_FALSE(m->translate(GuestAddress(4 * kMiB), 2 * kMiB + 1));
  EXPECT_FALSE(m->translate(GuestAddress(6 * kMiB), 1));
  // Writes land in the right region.
  ASSERT_TRUE(m->write_obj<uint32_t>(GuestAddress(5 * kMiB), 0xfeedface));
  uint32_t raw;
  std::memcpy(&raw, m->regions()[1].host + kMiB, 4);
  EXPECT_EQ(raw, 0xfeedfaceu);
}

TEST(GuestMemory, ReadWriteObj) {
  auto m = anon(2 * kMiB);
  struct Pair {
    uint32_t a;
    uint16_t b;
  };
  ASSERT_TRUE(m->write_obj(GuestAddress(0x1000), Pair{0x11223344, 0x5566}));
  auto p = m->read_obj<Pair>(GuestAddress(0x1000));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->a, 0x11223344u);
  EXPECT_EQ(p->b, 0x5566u);
  auto b = m->read_obj<uint8_t>(GuestAddress(0x1000));
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, 0x44);  // little-endian layout in guest RAM
  EXPECT_FALSE(m->read_obj<uint64_t>(GuestAddress(2 * kMiB - 4)));
  EXPECT_FALSE(m->write_obj<uint64_t>(GuestAddress(2 * kMiB - 4), 1));
  // A refused write leaves memory untouched.
  EXPECT_EQ(*m->read_obj<uint32_t>(GuestAddress(2 * kMiB - 4)), 0u);

  std::array<std::byte, 16> in{}, out{};
  for (size_t i = 0; i < in.size(); ++i) in[i] = std::byte(i + 1);
  ASSERT_TRUE(m->write(GuestAddress(0x2000), in));
  ASSERT_TRUE(m->read(GuestAddress(0x2000), out));
  EXPECT_EQ(in, out);
  EXPECT_FALSE(m->read(GuestAddress(2 * kMiB - 8), out));
}

TEST(GuestMemory, GuardPagesAreProtNone) {
  auto m = two_regions();
  for (const auto& r : m->regions()) {
    EXPECT_EQ(protection_at(r.host).substr(0, 3), "rw-");
    EXPECT_EQ(protection_at(r.host + r.size - 1).substr(0, 3), "rw-");
    EXPECT_EQ(protection_at(r.host - 1).substr(0, 3), "---");
    EXPECT_EQ(protection_at(r.host - GuestMemory::kGuardBytes).substr(0, 3), "---");
    EXPECT_EQ(protection_at(r.host + r.size).substr(0, 3), "---");
    EXPECT_EQ(protection_at(r.host + r.size + GuestMemory::kGuardBytes - 1).substr(0, 3), "---");
  }
}

#if defined(__SANITIZE_ADDRESS__)
#define MICROVM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MICROVM_TEST_ASAN 1
#endif
#endif

// The child dies of SIGSEGV; under AddressSanitizer, ASan catches the signal, reports a SEGV
// and exits non-zero instead.
bool died_of_segv(int status) {
#ifdef MICROVM_TEST_ASAN
  return WIFEXITED(status) && WEXITSTATUS(status) != 0;
#else
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
#endif
}
#ifdef MICROVM_TEST_ASAN
constexpr const char* kSegvMessage = "SEGV on unknown address";
#else
constexpr const char* kSegvMessage = "";
#endif

TEST(GuestMemoryDeathTest, TouchingGuardFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto m = anon(2 * kMiB);
  volatile std::byte* past_end = m->regions()[0].host + m->regions()[0].size;
  volatile std::byte* before = m->regions()[0].host - 1;
  EXPECT_EXIT({ (void)*past_end; }, died_of_segv, kSegvMessage);
  EXPECT_EXIT({ *before = std::byte{1}; }, died_of_segv, kSegvMessage);
  // Control: the last byte of RAM itself is fine.
  volatile std::byte* last = past_end - 1;
  *last = std::byte{7};
  const std::byte got = *last;
  EXPECT_EQ(got, std::byte{7});
}

TEST(GuestMemory, MemfdBacking) {
  auto m = two_regions(MemoryBacking::kMemfd);
  ASSERT_GE(m->fd(), 0);
  struct stat st;
  ASSERT_EQ(::fstat(m->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 3 * kMiB);  // one file for all regions
  EXPECT_EQ(m->regions()[0].fd, m->fd());
  EXPECT_EQ(m->regions()[0].fd_offset, 0u);
  EXPECT_EQ(m->regions()[1].fd_offset, kMiB);
  // The mapping is shared with the fd: a write through guest RAM is visible via pread.
  ASSERT_TRUE(m->write_obj<uint32_t>(GuestAddress(4 * kMiB + 8), 0xabcd1234));
  uint32_t v = 0;
  ASSERT_EQ(::pread(m->fd(), &v, 4, static_cast<off_t>(kMiB + 8)), 4);
  EXPECT_EQ(v, 0xabcd1234u);
}

// What a hostile vhost-user back end holding the fd could try: another open file description
// (as a back end that re-opens /proc/PID/fd/N gets) must be refused just the same.
// `page`: the backing's page size (hugetlb refuses unaligned sizes with EINVAL before any seal check).
void expect_size_sealed(int fd, uint64_t size, uint64_t page) {
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  errno = 0;
  EXPECT_EQ(::ftruncate(fd, 0), -1) << "a back end could shrink guest RAM";
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size - page)), -1);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size + page)), -1) << "a back end could grow guest RAM";
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1) << "a back end could add seals";
  EXPECT_EQ(errno, EPERM);
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);
}

TEST(GuestMemory, MemfdSizeIsSealed) {
  auto m = two_regions(MemoryBacking::kMemfd);
  ASSERT_GE(m->fd(), 0);
  EXPECT_EQ(m->seal_problem(), "");
  int seals = ::fcntl(m->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_EQ(seals & F_SEAL_WRITE, 0) << "guest RAM must stay writable";
  expect_size_sealed(m->fd(), 3 * kMiB, 4096);
  int reopened = ::open(("/proc/self/fd/" + std::to_string(m->fd())).c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(reopened, 0);
  expect_size_sealed(reopened, 3 * kMiB, 4096);
  ::close(reopened);
  // RAM still works after the attempts.
  ASSERT_TRUE(m->write_obj<uint32_t>(GuestAddress(4 * kMiB + 8), 0x5ea1ed));
  EXPECT_EQ(*m->read_obj<uint32_t>(GuestAddress(4 * kMiB + 8)), 0x5ea1edu);
}

TEST(GuestMemory, HugetlbMemfdIsSealedWhenTheKernelCan) {
  auto pool = read_hugepage_pool();
  if (!pool || pool->free - std::min(pool->free, pool->reserved) < 2)
    GTEST_SKIP() << "needs two free 2 MiB huge pages (sysctl -w vm.nr_hugepages=2)";
  MemoryLayoutEntry e{GuestAddress(0), 4 * kMiB};
  auto m = GuestMemory::create(std::span(&e, 1), MemoryBacking::kHugetlb);
  ASSERT_TRUE(m) << m.error().what;
  if (!(*m)->seal_problem().empty()) GTEST_SKIP() << (*m)->seal_problem();
  expect_size_sealed((*m)->fd(), 4 * kMiB, 2 * kMiB);
}

TEST(GuestMemory, HugetlbSizeMustBe2MiBMultiple) {
  MemoryLayoutEntry e{GuestAddress(0), 3 * kMiB};
  auto r = GuestMemory::create(std::span(&e, 1), MemoryBacking::kHugetlb);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what.find("2 MiB"), std::string::npos) << r.error().what;
}

TEST(GuestMemory, HugetlbShortPoolIsRefusedWithAdvice) {
  auto pool = read_hugepage_pool();
  if (!pool) GTEST_SKIP() << "no hugetlb pool on this host: " << pool.error().what;
  uint64_t available = pool->free - std::min(pool->free, pool->reserved);
  MemoryLayoutEntry e{GuestAddress(0), (available + 10) * pool->page_size};
  auto r = GuestMemory::create(std::span(&e, 1), MemoryBacking::kHugetlb);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ENOMEM);
  EXPECT_NE(r.error().what.find("sysctl -w vm.nr_hugepages="), std::string::npos) << r.error().what;
  // The advice asks for exactly the missing pages on top of the current pool.
  std::string want = "vm.nr_hugepages=" + std::to_string(pool->total + 10);
  EXPECT_NE(r.error().what.find(want), std::string::npos) << r.error().what;
}

TEST(GuestRegion, ContainsAndEnd) {
  GuestRegion r;
  r.guest_base = GuestAddress(0x1000);
  r.size = 0x1000;
  EXPECT_EQ(r.end(), GuestAddress(0x2000));
  EXPECT_FALSE(r.contains(GuestAddress(0xfff)));
  EXPECT_TRUE(r.contains(GuestAddress(0x1000)));
  EXPECT_TRUE(r.contains(GuestAddress(0x1fff)));
  EXPECT_FALSE(r.contains(GuestAddress(0x2000)));
}

TEST(GuestAddress, CheckedAdd) {
  EXPECT_EQ(GuestAddress(10).checked_add(5), GuestAddress(15));
  EXPECT_EQ(GuestAddress(UINT64_MAX).checked_add(1), std::nullopt);
  EXPECT_EQ(GuestAddress(UINT64_MAX - 1).checked_add(1), GuestAddress(UINT64_MAX));
}

}  // namespace
}  // namespace microvm

namespace microvm {
namespace {

uint64_t memfd_allocated(const GuestMemory& mem) {
  struct stat st {};
  if (::fstat(mem.fd(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST(GuestMemoryDiscard, PunchesWholePagesOfTheMemfd) {
  MemoryLayoutEntry e{GuestAddress(0), 4 << 20};
  auto mem = GuestMemory::create(std::span(&e, 1), MemoryBacking::kMemfd);
  ASSERT_TRUE(mem.has_value()) << mem.error().what;
  std::vector<std::byte> ones(1 << 20, std::byte{1});
  ASSERT_TRUE((*mem)->write(GuestAddress(1 << 20), ones).has_value());
  uint64_t before = memfd_allocated(**mem);
  EXPECT_GE(before, 1u << 20);
  // 100 bytes into the first page to 100 bytes into the last: only whole pages in between go.
  auto n = (*mem)->discard(GuestAddress((1 << 20) + 100), (1 << 20) - 100);
  ASSERT_TRUE(n.has_value()) << n.error().what;
  EXPECT_EQ(*n, (1u << 20) - 4096);
  // Measured before reading the holes back: a read fault on shmem allocates the page again.
  EXPECT_LE(memfd_allocated(**mem) + (1 << 20) - 4096, before);
  EXPECT_EQ(*(*mem)->read_obj<uint8_t>(GuestAddress((1 << 20) + 100)), 1u);
  EXPECT_EQ(*(*mem)->read_obj<uint8_t>(GuestAddress((1 << 20) + 4096)), 0u);
  EXPECT_EQ(*(*mem)->read_obj<uint8_t>(GuestAddress((2 << 20) - 1)), 0u);
  // Smaller than a page: nothing released.
  EXPECT_EQ(*(*mem)->discard(GuestAddress(100), 200), 0u);
  // Outside RAM, or crossing its end: refused.
  EXPECT_FALSE((*mem)->discard(GuestAddress(4 << 20), 4096).has_value());
  EXPECT_FALSE((*mem)->discard(GuestAddress((4 << 20) - 4096), 8192).has_value());
  std::byte outside[16];
  EXPECT_FALSE((*mem)->discard_host(outside).has_value());
}

TEST(GuestMemoryDiscard, DropsAnonymousPages) {
  auto mem = GuestMemory::create_anonymous(1 << 20);
  ASSERT_TRUE(mem.has_value());
  ASSERT_TRUE((*mem)->write_obj(GuestAddress(8192), uint64_t{~0ull}).has_value());
  auto host = *(*mem)->translate(GuestAddress(8192), 4096);
  EXPECT_EQ(*(*mem)->discard_host(host), 4096u);
  EXPECT_EQ(*(*mem)->read_obj<uint64_t>(GuestAddress(8192)), 0u);
  EXPECT_EQ((*mem)->discard_granularity(), 4096u);
}

// Large writes to memfd RAM go through pwrite() on the memfd: the bytes must land at the right
// offset of the right region (the second region starts 1 MiB into the file, not at 4 MiB).
TEST(GuestMemoryWrite, LargeMemfdWritesLandInTheRightRegion) {
  auto m = two_regions(MemoryBacking::kMemfd);
  std::vector<std::byte> data(300 * 1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i * 7 + 3);
  GuestAddress at(4 * kMiB + 12345);
  ASSERT_TRUE(m->write(at, data).has_value());
  auto view = *m->translate(at, data.size());
  EXPECT_TRUE(std::equal(data.begin(), data.end(), view.begin()));
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(m->read(at, back).has_value());
  EXPECT_EQ(back, data);
  // Through the file as well: region 2 is at file offset 1 MiB.
  std::vector<std::byte> file(data.size());
  ASSERT_EQ(::pread(m->fd(), file.data(), file.size(), static_cast<off_t>(kMiB + 12345)),
            static_cast<ssize_t>(file.size()));
  EXPECT_EQ(file, data);
  // Nothing around it was touched.
  EXPECT_EQ(*m->read_obj<uint8_t>(GuestAddress(4 * kMiB + 12344)), 0u);
  EXPECT_EQ(*m->read_obj<uint8_t>(at + data.size()), 0u);
  // Crossing the end of a region is refused before anything is written.
  EXPECT_FALSE(m->write(GuestAddress(kMiB - 1000), data).has_value());
}

TEST(GuestMemoryZero, ClearsPartialPagesAndReleasesWholeOnes) {
  for (MemoryBacking b : {MemoryBacking::kMemfd, MemoryBacking::kAnonymous}) {
    auto m = two_regions(b);
    std::vector<std::byte> ones(2 * kMiB, std::byte{0xff});
    ASSERT_TRUE(m->write(GuestAddress(4 * kMiB), ones).has_value());
    uint64_t before = b == MemoryBacking::kMemfd ? memfd_allocated(*m) : 0;
    // From 100 bytes into a page to 100 bytes into a page 64 pages later.
    GuestAddress from(4 * kMiB + 4096 + 100);
    uint64_t len = 64 * 4096;
    ASSERT_TRUE(m->zero(from, len).has_value());
    if (b == MemoryBacking::kMemfd) EXPECT_LE(memfd_allocated(*m) + 62 * 4096, before);
    auto view = *m->translate(GuestAddress(4 * kMiB), 2 * kMiB);
    for (uint64_t i = 0; i < view.size(); ++i) {
      bool inside = i >= 4096 + 100 && i < 4096 + 100 + len;
      ASSERT_EQ(view[i], inside ? std::byte{0} : std::byte{0xff}) << "offset " << i;
    }
    // Smaller than a page, and outside RAM.
    ASSERT_TRUE(m->zero(GuestAddress(4 * kMiB + 10), 5).has_value());
    EXPECT_EQ(*m->read_obj<uint8_t>(GuestAddress(4 * kMiB + 12)), 0u);
    EXPECT_EQ(*m->read_obj<uint8_t>(GuestAddress(4 * kMiB + 15)), 0xffu);
    EXPECT_FALSE(m->zero(GuestAddress(2 * kMiB), 10).has_value());
  }
}

}  // namespace
}  // namespace microvm
