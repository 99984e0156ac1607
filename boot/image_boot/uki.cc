#include "boot/image_boot/uki.h"

#include "boot/image_boot/byte_order.h"
#include "boot/image_boot/config_text.h"

namespace microvm::image_boot {

Result<std::vector<PeSection>> parse_pe_sections(std::span<const std::byte> f, uint64_t file_size) {
  if (f.size() > file_size) return fail(EINVAL, "PE: header buffer larger than the file");
  if (f.size() < 0x40 || f[0] != std::byte{'M'} || f[1] != std::byte{'Z'})
    return fail(EINVAL, "not a PE image (no MZ header)");
  uint64_t pe = le32(f, 0x3C);
  if (pe > f.size() || f.size() - pe < 24) return fail(EINVAL, "PE: header offset past the file");
  if (le32(f, pe) != 0x00004550) return fail(EINVAL, "not a PE image (no PE signature)");
  uint64_t count = le16(f, pe + 6);
  uint64_t optional_size = le16(f, pe + 20);
  if (count > kMaxPeSections) return fail(EINVAL, "PE: more than 96 sections");
  uint64_t table = pe + 24 + optional_size;
  if (table > f.size() || (f.size() - table) / 40 < count)
    return fail(EINVAL, "PE: section table past the headers read");
  std::vector<PeSection> out;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t at = table + i * 40;
    PeSection s;
    for (size_t k = 0; k < 8 && f[at + k] != std::byte{0}; ++k) s.name += static_cast<char>(f[at + k]);
    uint64_t virtual_size = le32(f, at + 8), raw_size = le32(f, at + 16), raw_offset = le32(f, at + 20);
    // VirtualSize is the exact size (objcopy and ukify write it so); the raw size is padded to
    // the file alignment. Bytes past the raw data would be zeros in memory: we take the data.
    s.size = virtual_size ? std::min(virtual_size, raw_size) : raw_size;
    s.offset = raw_offset;
    if (s.size && (s.offset > file_size || s.size > file_size - s.offset))
      return fail(EINVAL, "PE: section '" + s.name + "' lies past the end of the file");
    out.push_back(std::move(s));
  }
  return out;
}

Result<UkiParts> find_uki_parts(std::span<const std::byte> file, uint64_t file_size) {
  auto sections = TRY(parse_pe_sections(file, file_size));
  UkiParts p;
  for (const auto& s : sections) {
    PeSection* slot = s.name == ".linux"     ? &p.linux_
                      : s.name == ".initrd"  ? &p.initrd
                      : s.name == ".cmdline" ? &p.cmdline
                      : s.name == ".osrel"   ? &p.osrel
                                             : nullptr;
    if (slot && slot->size == 0) *slot = s;  // the first one wins, as systemd-stub's lookup
  }
  if (p.linux_.size == 0) return fail(ENOENT, "PE image has no .linux section: not a unified kernel image");
  return p;
}

std::string os_release_name(std::string_view osrel) {
  std::string pretty, name;
  for (auto raw : split_lines(osrel)) {
    auto line = trim(raw);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    auto key = line.substr(0, eq);
    std::string value(trim(line.substr(eq + 1)));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (key == "PRETTY_NAME")
      pretty = value;
    else if (key == "NAME")
      name = value;
  }
  return pretty.empty() ? name : pretty;
}

std::string uki_cmdline(std::span<const std::byte> section) {
  std::string s;
  for (auto b : section) {
    char c = static_cast<char>(b);
    if (c == '\0') break;
    s += c == '\n' || c == '\t' || c == '\r' ? ' ' : c;
  }
  return std::string(trim(s));
}

}  // namespace microvm::image_boot
