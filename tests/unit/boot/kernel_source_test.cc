// The kernel loader reading through a ByteSource that is not in memory (a kernel inside a disk
// image): the same guest bytes as loading the whole image from memory, on memfd RAM (bounce
// buffer + pwrite) and anonymous RAM (read straight into the mapping); read errors and a
// source shorter than its headers claim are errors.
#include <gtest/gtest.h>

#include <cstring>

#include "boot/guest_copy.h"
#include "boot/kernel_loader.h"
#include "kernel_images.h"

namespace microvm {
namespace {

using namespace testing_images;

constexpr uint64_t kMiB = 1ull << 20;

// Bytes handed out only through read_at, with a read that fails from `fail_from` on.
class ChunkySource final : public ByteSource {
 public:
  explicit ChunkySource(std::vector<std::byte> bytes, uint64_t fail_from = UINT64_MAX)
      : bytes_(std::move(bytes)), fail_from_(fail_from) {}
  uint64_t size() const override { return bytes_.size(); }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    ++reads;
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) return fail(EIO, "past the end");
    if (offset + out.size() > fail_from_) return fail(EIO, "injected read error");
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  int reads = 0;

 private:
  std::vector<std::byte> bytes_;
  uint64_t fail_from_;
};

std::unique_ptr<GuestMemory> ram(MemoryBacking backing) {
  MemoryLayoutEntry e{GuestAddress(0), 64 * kMiB};
  auto m = GuestMemory::create(std::span(&e, 1), backing);
  EXPECT_TRUE(m) << m.error().what;
  return m ? std::move(*m) : nullptr;
}

// An ELF whose text segment spans several bounce-buffer chunks and does not end on one.
std::vector<std::byte> big_elf() {
  return make_elf({{.paddr = 16 * kMiB, .filesz = 3 * GuestCopier::kChunkBytes + 123, .memsz = 4 * kMiB, .fill = 0xcc},
                   {.paddr = 24 * kMiB, .filesz = 0x100, .memsz = 0x100, .fill = 0xdd}},
                  16 * kMiB + 0x40);
}

class KernelSource : public ::testing::TestWithParam<MemoryBacking> {};

TEST_P(KernelSource, ElfThroughASourceLoadsTheSameBytes) {
  auto img = big_elf();
  auto via_span = ram(GetParam()), via_source = ram(GetParam());
  ASSERT_TRUE(via_span && via_source);
  auto a = load_kernel(*via_span, img);
  ChunkySource src(img);
  auto b = load_kernel(*via_source, src);
  ASSERT_TRUE(a) << a.error().what;
  ASSERT_TRUE(b) << b.error().what;
  EXPECT_EQ(a->entry, b->entry);
  EXPECT_EQ(a->image_end, b->image_end);
  EXPECT_GT(src.reads, 3);  // headers, phdrs, then the segments in chunks (memfd) or whole
  for (uint64_t at : {16 * kMiB, 16 * kMiB + 3 * GuestCopier::kChunkBytes + 122,
                      16 * kMiB + 3 * GuestCopier::kChunkBytes + 123, 20 * kMiB - 1, 24 * kMiB, 24 * kMiB + 0xff}) {
    auto x = via_span->read_obj<uint8_t>(GuestAddress(at));
    auto y = via_source->read_obj<uint8_t>(GuestAddress(at));
    ASSERT_TRUE(x && y);
    EXPECT_EQ(*x, *y) << "at " << at;
  }
  EXPECT_EQ(*via_source->read_obj<uint8_t>(GuestAddress(16 * kMiB + 3 * GuestCopier::kChunkBytes + 122)), 0xcc);
  EXPECT_EQ(*via_source->read_obj<uint8_t>(GuestAddress(16 * kMiB + 3 * GuestCopier::kChunkBytes + 123)), 0x00);
}

TEST_P(KernelSource, BzImageThroughASourceLoadsTheProtectedModeKernel) {
  BzImageSpec spec;
  spec.payload_size = 2 * GuestCopier::kChunkBytes + 77;
  auto img = make_bzimage(spec);
  auto via_span = ram(GetParam()), via_source = ram(GetParam());
  ASSERT_TRUE(via_span && via_source);
  auto a = load_kernel(*via_span, img);
  ChunkySource src(img);
  auto b = load_kernel(*via_source, src);
  ASSERT_TRUE(a) << a.error().what;
  ASSERT_TRUE(b) << b.error().what;
  EXPECT_EQ(b->format, KernelFormat::kBzImage);
  EXPECT_EQ(a->image_start, b->image_start);
  EXPECT_EQ(a->image_end, b->image_end);
  auto x = via_span->translate(a->image_start, a->image_end.raw() - a->image_start.raw());
  auto y = via_source->translate(b->image_start, b->image_end.raw() - b->image_start.raw());
  ASSERT_TRUE(x && y);
  EXPECT_TRUE(std::memcmp(x->data(), y->data(), x->size()) == 0);
}

TEST_P(KernelSource, AReadErrorFailsTheLoad) {
  auto img = big_elf();
  auto mem = ram(GetParam());
  ASSERT_TRUE(mem);
  ChunkySource src(img, img.size() - 1000);  // the tail of the text segment cannot be read
  auto k = load_kernel(*mem, src);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().what.find("injected read error"), std::string::npos) << k.error().what;
}

INSTANTIATE_TEST_SUITE_P(Backings, KernelSource, ::testing::Values(MemoryBacking::kMemfd, MemoryBacking::kAnonymous));

TEST(GuestCopier, RefusesRangesOutsideTheSourceOrRam) {
  auto mem = ram(MemoryBacking::kMemfd);
  ASSERT_TRUE(mem);
  ChunkySource src(std::vector<std::byte>(4096, std::byte{1}));
  GuestCopier c(*mem);
  EXPECT_TRUE(c.copy(GuestAddress(kMiB), src, 0, 4096));
  EXPECT_FALSE(c.copy(GuestAddress(kMiB), src, 1, 4096));             // past the source's end
  EXPECT_FALSE(c.copy(GuestAddress(kMiB), src, UINT64_MAX, 2));       // offset + len wraps
  EXPECT_FALSE(c.copy(GuestAddress(64 * kMiB - 100), src, 0, 4096));  // past guest RAM
  EXPECT_EQ(src.reads, 1);                                            // refused before reading
}

}  // namespace
}  // namespace microvm
