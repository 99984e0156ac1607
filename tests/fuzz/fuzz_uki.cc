// Fuzzes the PE section-table reader behind unified kernel images (EFI/Linux/*.efi): MZ and PE
// headers, the section count and every section's offset and size. Nothing may crash, and every
// section it reports must lie inside the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "boot/image_boot/uki.h"

using namespace microvm::image_boot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = std::as_bytes(std::span(data, size));
  auto sections = parse_pe_sections(file, file.size());
  if (sections) {
    if (sections->size() > kMaxPeSections) std::abort();
    for (const auto& s : *sections)
      if (s.size && (s.offset > size || s.size > size - s.offset)) std::abort();
  }
  auto parts = find_uki_parts(file, file.size());
  if (!parts) return 0;
  if (parts->linux_.size == 0) std::abort();
  auto cmd = file.subspan(parts->cmdline.offset <= size ? parts->cmdline.offset : 0, parts->cmdline.size);
  (void)uki_cmdline(cmd);
  auto osrel = file.subspan(parts->osrel.offset <= size ? parts->osrel.offset : 0, parts->osrel.size);
  (void)os_release_name(std::string_view(reinterpret_cast<const char*>(osrel.data()), osrel.size()));
  return 0;
}
