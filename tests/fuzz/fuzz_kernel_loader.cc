// Fuzzes the kernel loader: the input is a kernel image (ELF vmlinux, bzImage or anything
// else) handed to load_kernel() with a small guest RAM. Nothing may crash or write outside
// guest RAM; a successful load must describe an image that lies inside RAM, above 1 MiB,
// with the entry point inside it. The zero page is then written for it, as the vmm does.
// The same image is then loaded again through a ByteSource that is not in memory (as a kernel
// inside a disk image is), into memfd RAM (the bounce-buffer path): the outcome must match.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>

#include "boot/kernel_loader.h"
#include "boot/zero_page.h"
#include "memory/guest_memory.h"

using namespace microvm;

namespace {

// 32 MiB: big enough for synthetic kernels at the default 16 MiB load address, small enough
// that clearing it between inputs is cheap. Only touched pages cost anything.
constexpr uint64_t kRamBytes = 32ull << 20;

const GuestMemory& ram() {
  static std::unique_ptr<GuestMemory> mem = [] {
    auto m = GuestMemory::create_anonymous(kRamBytes);
    if (!m) std::abort();
    return std::move(*m);
  }();
  return *mem;
}

const GuestMemory& memfd_ram() {
  static std::unique_ptr<GuestMemory> mem = [] {
    MemoryLayoutEntry e{GuestAddress(0), kRamBytes};
    auto m = GuestMemory::create(std::span(&e, 1), MemoryBacking::kMemfd);
    if (!m) std::abort();
    return std::move(*m);
  }();
  return *mem;
}

// The image's bytes through read_at only.
class ReadOnlySource final : public ByteSource {
 public:
  explicit ReadOnlySource(std::span<const std::byte> b) : b_(b) {}
  uint64_t size() const override { return b_.size(); }
  Result<void> read_at(uint64_t offset, std::span<std::byte> out) override {
    if (offset > b_.size() || out.size() > b_.size() - offset) return fail(EIO, "past the end");
    if (!out.empty()) std::memcpy(out.data(), b_.data() + offset, out.size());
    return {};
  }

 private:
  std::span<const std::byte> b_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const GuestMemory& mem = ram();
  auto image = std::as_bytes(std::span(data, size));
  auto k = load_kernel(mem, image);
  ReadOnlySource src(image);
  auto k2 = load_kernel(memfd_ram(), src);
  if (k.has_value() != k2.has_value()) std::abort();
  if (k2) {
    if (k2->entry != k->entry || k2->image_start != k->image_start || k2->image_end != k->image_end) std::abort();
    if (*mem.read_obj<uint64_t>(k->entry) != *memfd_ram().read_obj<uint64_t>(k2->entry)) std::abort();
    (void)memfd_ram().zero(k2->image_start, k2->image_end.raw() - k2->image_start.raw());
  }
  if (!k) return 0;

  // Invariants of a successful load.
  const uint64_t start = k->image_start.raw(), end = k->image_end.raw(), entry = k->entry.raw();
  if (start < 0x100000 || end <= start || end > kRamBytes) std::abort();
  if (entry < start || entry >= end) std::abort();
  if (!mem.translate(k->image_start, end - start)) std::abort();
  if (k->format == KernelFormat::kBzImage && !k->header) std::abort();

  // What the vmm does next: an initrd slot and the zero page for this kernel.
  auto initrd = place_initrd(mem, *k, 4096);
  if (initrd && (initrd->raw() < end || initrd->raw() % 4096 || initrd->raw() + 4096 > kRamBytes)) std::abort();
  BootParamsSpec spec;
  spec.kernel = &*k;
  spec.cmdline = "console=ttyS0";
  if (initrd) {
    spec.initrd_addr = *initrd;
    spec.initrd_size = 4096;
  }
  (void)write_boot_params(mem, spec);

  // Give the next input clean RAM where this one wrote (image and the low boot area).
  std::memset(mem.regions()[0].host + start, 0, end - start);
  std::memset(mem.regions()[0].host, 0, 0x100000);
  return 0;
}
