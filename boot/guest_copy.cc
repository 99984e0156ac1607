#include "boot/guest_copy.h"

#include <algorithm>
#include <string>

namespace microvm {

Result<void> GuestCopier::copy(GuestAddress at, ByteSource& src, uint64_t offset, uint64_t len) {
  if (offset > src.size() || len > src.size() - offset)
    return fail(EIO, "range of " + std::to_string(len) + " bytes at offset " + std::to_string(offset) +
                         " lies past the end of the image (" + std::to_string(src.size()) + " bytes)");
  auto dst = TRY(mem_.translate(at, len));
  if (auto bytes = src.contiguous(); !bytes.empty()) {
    if (bytes.size() != src.size()) return fail(EIO, "image changed size while being read");
    return mem_.write(at, bytes.subspan(offset, len));
  }
  // memfd RAM takes large writes through pwrite() (no page fault per page, see
  // GuestMemory::write), so a bounce buffer beats reading straight into the mapping there.
  if (mem_.backing() != MemoryBacking::kMemfd) return src.read_at(offset, dst);
  if (!chunk_) chunk_ = std::make_unique_for_overwrite<std::byte[]>(kChunkBytes);
  for (uint64_t done = 0; done < len;) {
    uint64_t n = std::min(kChunkBytes, len - done);
    std::span<std::byte> buf(chunk_.get(), n);
    TRY(src.read_at(offset + done, buf));
    TRY(mem_.write(at + done, buf));
    done += n;
  }
  return {};
}

}  // namespace microvm
