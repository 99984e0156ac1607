// Fuzzes the kernel loader: the input is a kernel image (ELF vmlinux, bzImage or anything
// else) handed to load_kernel() with a small guest RAM. Nothing may crash or write outside
// guest RAM; a successful load must describe an image that lies inside RAM, above 1 MiB,
// with the entry point inside it. The zero page is then written for it, as the vmm does.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const GuestMemory& mem = ram();
  auto image = std::as_bytes(std::span(data, size));
  auto k = load_kernel(mem, image);
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
