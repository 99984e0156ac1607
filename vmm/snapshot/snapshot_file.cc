#include "vmm/snapshot/snapshot_file.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "vmm/snapshot/byte_codec.h"

namespace microvm::snapshot {
namespace {

constexpr size_t kCrcOffset = 96;  // header CRC: over header bytes [0, 96) and the section table
constexpr size_t kCpuOffset = 32;

void encode_cpu(ByteSink& out, const CpuSignature& c) {
  out.raw(c.vendor, sizeof c.vendor);
  for (uint32_t v : {c.leaf1_eax, c.leaf1_ecx, c.leaf1_edx, c.leaf7_ebx, c.leaf7_ecx, c.leaf7_edx, c.leafd_eax,
                     c.leafd_edx, c.ext1_ecx, c.ext1_edx})
    out.u32(v);
}

Result<CpuSignature> decode_cpu(ByteSource& in) {
  CpuSignature c;
  auto vendor = TRY(in.take(sizeof c.vendor));
  std::memcpy(c.vendor, vendor.data(), sizeof c.vendor);
  for (uint32_t* v : {&c.leaf1_eax, &c.leaf1_ecx, &c.leaf1_edx, &c.leaf7_ebx, &c.leaf7_ecx, &c.leaf7_edx, &c.leafd_eax,
                      &c.leafd_edx, &c.ext1_ecx, &c.ext1_edx})
    *v = TRY(in.u32());
  return c;
}

bool known_type(uint32_t t) { return t >= 1 && t <= 5; }

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

uint32_t crc32_of(std::span<const std::byte> bytes) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; sections are bounded far below 4 GiB, but feed in chunks anyway.
  const auto* p = reinterpret_cast<const Bytef*>(bytes.data());
  size_t left = bytes.size();
  while (left) {
    uInt n = static_cast<uInt>(std::min<size_t>(left, 1u << 30));
    crc = ::crc32(crc, p, n);
    p += n;
    left -= n;
  }
  return static_cast<uint32_t>(crc);
}

const Section* SnapshotFile::find(SectionType type, uint32_t index) const {
  for (const auto& s : sections)
    if (s.type == type && s.index == index) return &s;
  return nullptr;
}

size_t SnapshotFile::count(SectionType type) const {
  return static_cast<size_t>(
      std::count_if(sections.begin(), sections.end(), [type](const Section& s) { return s.type == type; }));
}

Result<void> check_cpu_compatible(const CpuSignature& saved, const CpuSignature& host) {
  auto vendor = [](const CpuSignature& c) { return std::string(c.vendor, sizeof c.vendor); };
  if (std::memcmp(saved.vendor, host.vendor, sizeof saved.vendor) != 0)
    return fail(EINVAL, "snapshot was taken on a " + vendor(saved) + " CPU; this host has " + vendor(host));
  // Family and model (stepping ignored): the same microarchitecture.
  if ((saved.leaf1_eax & ~0xfu) != (host.leaf1_eax & ~0xfu))
    return fail(EINVAL, "snapshot was taken on CPU family/model " + hex(saved.leaf1_eax) + "; this host is " +
                            hex(host.leaf1_eax) + " (restore needs the same CPU model)");
  struct Leaf {
    const char* name;
    uint32_t saved, host;
  };
  const Leaf leaves[] = {
      {"CPUID.1:ECX", saved.leaf1_ecx, host.leaf1_ecx},
      {"CPUID.1:EDX", saved.leaf1_edx, host.leaf1_edx},
      {"CPUID.7:EBX", saved.leaf7_ebx, host.leaf7_ebx},
      {"CPUID.7:ECX", saved.leaf7_ecx, host.leaf7_ecx},
      {"CPUID.7:EDX", saved.leaf7_edx, host.leaf7_edx},
      {"CPUID.0xD:EAX (XCR0)", saved.leafd_eax, host.leafd_eax},
      {"CPUID.0xD:EDX (XCR0)", saved.leafd_edx, host.leafd_edx},
      {"CPUID.0x80000001:ECX", saved.ext1_ecx, host.ext1_ecx},
      {"CPUID.0x80000001:EDX", saved.ext1_edx, host.ext1_edx},
  };
  // Bits that change at run time on the same host, not features: OSXSAVE (1:ECX bit 27)
  // follows the host kernel's CR4; it is masked out when the signature is taken.
  for (const auto& l : leaves) {
    uint32_t missing = l.saved & ~l.host;
    if (missing)
      return fail(EINVAL,
                  std::string("snapshot needs CPU features this host lacks: ") + l.name + " bits " + hex(missing));
  }
  return {};
}

std::vector<std::byte> encode_snapshot(const SnapshotFile& file) {
  ByteSink out;
  out.raw(kMagic, sizeof kMagic);
  out.u32(kFormatVersion);
  out.u32(kHeaderBytes);
  out.u32(static_cast<uint32_t>(file.sections.size()));
  out.u32(0);  // flags
  const size_t total_at = out.size();
  out.u64(0);  // total size, patched below
  encode_cpu(out, file.cpu);
  while (out.size() < kCrcOffset) out.u8(0);
  out.u32(0);  // header CRC, patched below
  while (out.size() < kHeaderBytes) out.u8(0);

  uint64_t offset = kHeaderBytes + file.sections.size() * kSectionEntryBytes;
  for (const auto& s : file.sections) {
    out.u32(static_cast<uint32_t>(s.type));
    out.u32(s.index);
    out.u64(offset);
    out.u64(s.payload.size());
    out.u32(crc32_of(s.payload));
    out.u32(0);
    offset += s.payload.size();
  }
  for (const auto& s : file.sections) out.raw(s.payload.data(), s.payload.size());

  auto& b = out.bytes();
  uint64_t total = b.size();
  for (unsigned i = 0; i < 8; ++i) b[total_at + i] = static_cast<std::byte>(total >> (8 * i));
  uint32_t crc = crc32_of(std::span(b).first(kCrcOffset));
  crc = static_cast<uint32_t>(::crc32(crc, reinterpret_cast<const Bytef*>(b.data() + kHeaderBytes),
                                      static_cast<uInt>(file.sections.size() * kSectionEntryBytes)));
  out.patch_u32(kCrcOffset, crc);
  return out.take();
}

Result<SnapshotFile> parse_snapshot(std::span<const std::byte> bytes) {
  if (bytes.size() < kHeaderBytes)
    return fail(EINVAL, "snapshot state file is truncated: " + std::to_string(bytes.size()) +
                            " bytes, the header alone is " + std::to_string(kHeaderBytes));
  if (bytes.size() > kMaxStateFileBytes) return fail(EINVAL, "snapshot state file is larger than 64 MiB");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    return fail(EINVAL, "not a microvm snapshot state file (wrong magic)");
  ByteSource h(bytes.first(kHeaderBytes), "snapshot header");
  TRY(h.take(sizeof kMagic));
  uint32_t version = TRY(h.u32());
  if (version != kFormatVersion)
    return fail(EINVAL, "snapshot format version " + std::to_string(version) +
                            " is not supported (this microvm reads version " + std::to_string(kFormatVersion) + ")");
  uint32_t header_bytes = TRY(h.u32());
  if (header_bytes != kHeaderBytes)
    return fail(EINVAL, "snapshot header size " + std::to_string(header_bytes) + " is not 128");
  uint32_t count = TRY(h.u32());
  uint32_t flags = TRY(h.u32());
  uint64_t total = TRY(h.u64());
  if (flags != 0) return fail(EINVAL, "snapshot header has unknown flags " + hex(flags));
  if (count > kMaxSections)
    return fail(EINVAL,
                "snapshot has " + std::to_string(count) + " sections (at most " + std::to_string(kMaxSections) + ")");
  if (total != bytes.size())
    return fail(EINVAL, "snapshot state file is " + std::to_string(bytes.size()) + " bytes but its header says " +
                            std::to_string(total) + " (truncated or extended)");
  SnapshotFile file;
  file.cpu = TRY(decode_cpu(h));
  const uint64_t table_end = kHeaderBytes + uint64_t{count} * kSectionEntryBytes;
  if (table_end > bytes.size()) return fail(EINVAL, "snapshot section table runs past the end of the file");

  uint32_t stored_crc = 0;
  std::memcpy(&stored_crc, bytes.data() + kCrcOffset, 4);  // little-endian host (x86-64 only)
  uint32_t crc = crc32_of(bytes.first(kCrcOffset));
  crc = static_cast<uint32_t>(::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + kHeaderBytes),
                                      static_cast<uInt>(table_end - kHeaderBytes)));
  if (crc != stored_crc) return fail(EINVAL, "snapshot header or section table is corrupt (CRC mismatch)");
  for (size_t i = kCrcOffset + 4; i < kHeaderBytes; ++i)
    if (bytes[i] != std::byte{0}) return fail(EINVAL, "snapshot header: reserved bytes are not zero");

  struct Range {
    uint64_t begin, end;
  };
  std::vector<Range> ranges;
  ByteSource t(bytes.subspan(kHeaderBytes, table_end - kHeaderBytes), "snapshot section table");
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t type = TRY(t.u32());
    uint32_t index = TRY(t.u32());
    uint64_t offset = TRY(t.u64());
    uint64_t length = TRY(t.u64());
    uint32_t section_crc = TRY(t.u32());
    uint32_t reserved = TRY(t.u32());
    std::string name = "snapshot section " + std::to_string(i) + " (type " + std::to_string(type) + ", index " +
                       std::to_string(index) + ")";
    if (!known_type(type)) return fail(EINVAL, name + ": unknown section type");
    if (reserved != 0) return fail(EINVAL, name + ": reserved field is not zero");
    if (length > kMaxSectionBytes) return fail(EINVAL, name + ": " + std::to_string(length) + " bytes is too large");
    uint64_t end;
    if (__builtin_add_overflow(offset, length, &end) || offset < table_end || end > bytes.size())
      return fail(EINVAL, name + ": lies outside the file's data area");
    for (const auto& r : ranges)
      if (length && offset < r.end && r.begin < end) return fail(EINVAL, name + ": overlaps another section");
    ranges.push_back({offset, end});
    for (const auto& s : file.sections)
      if (static_cast<uint32_t>(s.type) == type && s.index == index) return fail(EINVAL, name + ": appears twice");
    auto payload = bytes.subspan(offset, length);
    if (crc32_of(payload) != section_crc) return fail(EINVAL, name + ": corrupt (CRC mismatch)");
    file.sections.push_back(Section{static_cast<SectionType>(type), index, {payload.begin(), payload.end()}});
  }
  return file;
}

}  // namespace microvm::snapshot
