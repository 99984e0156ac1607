#pragma once
// Unified kernel images (Boot Loader Specification Type 2, EFI/Linux/*.efi): a PE/COFF file whose
// sections .linux, .initrd, .cmdline and .osrel hold the kernel, its initrd, its command line
// and the os-release text. Only the section table is read; the EFI stub in it is never run.
// Every offset and size in the headers is checked against the file.
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace microvm::image_boot {

struct PeSection {
  std::string name;               // up to 8 bytes, NULs dropped
  uint64_t offset = 0, size = 0;  // the section's bytes inside the file
};

constexpr size_t kMaxPeSections = 96;  // the PE format's own limit

// The section table of a PE image. `file` must hold at least the headers (the whole file is
// not needed: sections may lie beyond it; their bounds are checked against `file_size`).
[[nodiscard]] Result<std::vector<PeSection>> parse_pe_sections(std::span<const std::byte> file, uint64_t file_size);

struct UkiParts {
  PeSection linux_, initrd, cmdline, osrel;  // size 0: absent (.linux is required)
};
[[nodiscard]] Result<UkiParts> find_uki_parts(std::span<const std::byte> file, uint64_t file_size);

// The PRETTY_NAME (else NAME) of an os-release text, unquoted; "" when there is none.
std::string os_release_name(std::string_view osrel);
// A .cmdline section as a command line: NULs and trailing blanks/newlines dropped.
std::string uki_cmdline(std::span<const std::byte> section);

}  // namespace microvm::image_boot
