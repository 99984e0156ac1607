#include "vmm/snapshot/snapshot_file.h"

#include <gtest/gtest.h>

#include <cstring>

namespace microvm::snapshot {
namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

SnapshotFile sample() {
  SnapshotFile f;
  std::memcpy(f.cpu.vendor, "GenuineIntel", 12);
  f.cpu.leaf1_eax = 0x906ea;
  f.cpu.leaf1_ecx = 0x7ffafbff;
  f.sections.push_back({SectionType::kMachine, 0, bytes_of("machine")});
  f.sections.push_back({SectionType::kVcpu, 0, bytes_of("vcpu zero")});
  f.sections.push_back({SectionType::kVcpu, 1, bytes_of("vcpu one")});
  f.sections.push_back({SectionType::kDevice, 3, {}});
  return f;
}

void put_u32(std::vector<std::byte>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put_u64(std::vector<std::byte>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }

// Recomputes the header CRC after a test edited the header or table on purpose, so the
// check under test is the one that fires, not the CRC.
void fix_header_crc(std::vector<std::byte>& b) {
  uint32_t count;
  std::memcpy(&count, b.data() + 16, 4);
  std::vector<std::byte> covered(b.begin(), b.begin() + 96);
  size_t table_end = std::min(b.size(), kHeaderBytes + size_t{count} * kSectionEntryBytes);
  covered.insert(covered.end(), b.begin() + kHeaderBytes, b.begin() + table_end);
  put_u32(b, 96, crc32_of(covered));
}

std::string error_of(const std::vector<std::byte>& b) {
  auto r = parse_snapshot(b);
  return r ? std::string("(parsed)") : r.error().what;
}

TEST(SnapshotFile, RoundTrips) {
  auto f = sample();
  auto bytes = encode_snapshot(f);
  auto parsed = parse_snapshot(bytes);
  ASSERT_TRUE(parsed) << parsed.error().what;
  EXPECT_EQ(parsed->cpu, f.cpu);
  ASSERT_EQ(parsed->sections.size(), 4u);
  EXPECT_EQ(parsed->sections[2].index, 1u);
  EXPECT_EQ(parsed->sections[2].payload, bytes_of("vcpu one"));
  EXPECT_EQ(parsed->count(SectionType::kVcpu), 2u);
  EXPECT_NE(parsed->find(SectionType::kDevice, 3), nullptr);
  EXPECT_EQ(parsed->find(SectionType::kDevice, 4), nullptr);
}

TEST(SnapshotFile, EveryTruncationIsRefused) {
  auto bytes = encode_snapshot(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = parse_snapshot(std::span(bytes).first(n));
    ASSERT_FALSE(r) << "a file cut to " << n << " bytes parsed";
  }
  EXPECT_NE(error_of({bytes.begin(), bytes.begin() + 50}).find("truncated"), std::string::npos);
  EXPECT_NE(error_of({bytes.begin(), bytes.end() - 1}).find("truncated or extended"), std::string::npos);
}

TEST(SnapshotFile, EverySingleBitFlipIsRefused) {
  auto bytes = encode_snapshot(sample());
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto copy = bytes;
    copy[i] ^= std::byte{0x01};
    ASSERT_FALSE(parse_snapshot(copy)) << "a flipped bit at byte " << i << " went unnoticed";
  }
}

TEST(SnapshotFile, WrongMagicVersionAndSectionCrcAreNamed) {
  auto bytes = encode_snapshot(sample());
  auto magic = bytes;
  magic[0] = std::byte{'X'};
  EXPECT_NE(error_of(magic).find("wrong magic"), std::string::npos);

  auto version = bytes;
  put_u32(version, 8, 2);
  EXPECT_NE(error_of(version).find("format version 2 is not supported"), std::string::npos);

  auto payload = bytes;
  payload.back() ^= std::byte{0xff};
  EXPECT_NE(error_of(payload).find("CRC mismatch"), std::string::npos);
  EXPECT_NE(error_of(payload).find("type 2, index 1"), std::string::npos) << error_of(payload);

  auto header = bytes;
  header[40] ^= std::byte{1};  // inside the CPU signature
  EXPECT_NE(error_of(header).find("header or section table is corrupt"), std::string::npos);
}

TEST(SnapshotFile, CountsOffsetsAndTypesAreChecked) {
  auto bytes = encode_snapshot(sample());
  auto many = bytes;
  put_u32(many, 16, kMaxSections + 1);
  fix_header_crc(many);
  EXPECT_NE(error_of(many).find("sections (at most"), std::string::npos) << error_of(many);

  auto past_end = bytes;
  put_u32(past_end, 16, 1000);  // a table longer than the file
  fix_header_crc(past_end);
  EXPECT_NE(error_of(past_end).find("section table runs past"), std::string::npos) << error_of(past_end);

  auto outside = bytes;
  put_u64(outside, kHeaderBytes + 8, bytes.size() - 2);  // section 0 runs past the end
  fix_header_crc(outside);
  EXPECT_NE(error_of(outside).find("outside the file"), std::string::npos) << error_of(outside);

  auto into_table = bytes;
  put_u64(into_table, kHeaderBytes + 8, 0);  // section 0 "inside" the header
  fix_header_crc(into_table);
  EXPECT_NE(error_of(into_table).find("outside the file"), std::string::npos) << error_of(into_table);

  auto huge = bytes;
  put_u64(huge, kHeaderBytes + 16, ~0ull);  // offset + length overflows
  fix_header_crc(huge);
  EXPECT_FALSE(parse_snapshot(huge));

  auto overlap = bytes;
  uint64_t first_offset;
  std::memcpy(&first_offset, bytes.data() + kHeaderBytes + 8, 8);
  put_u64(overlap, kHeaderBytes + kSectionEntryBytes + 8, first_offset);  // section 1 on section 0
  fix_header_crc(overlap);
  EXPECT_NE(error_of(overlap).find("overlaps"), std::string::npos) << error_of(overlap);

  auto unknown = bytes;
  put_u32(unknown, kHeaderBytes, 99);
  fix_header_crc(unknown);
  EXPECT_NE(error_of(unknown).find("unknown section type"), std::string::npos);

  auto twice = bytes;
  put_u32(twice, kHeaderBytes + 2 * kSectionEntryBytes + 4, 0);  // vCPU 1 becomes a second vCPU 0
  fix_header_crc(twice);
  EXPECT_NE(error_of(twice).find("appears twice"), std::string::npos) << error_of(twice);
}

TEST(CpuCompatibility, SameCpuAndSubsetsPassOthersAreNamed) {
  CpuSignature a;
  std::memcpy(a.vendor, "AuthenticAMD", 12);
  a.leaf1_eax = 0xa20f12;
  a.leaf7_ebx = 0b1011;
  EXPECT_TRUE(check_cpu_compatible(a, a));
  CpuSignature more = a;
  more.leaf7_ebx |= 0b0100;
  more.leaf1_eax = 0xa20f10;  // another stepping
  EXPECT_TRUE(check_cpu_compatible(a, more));

  auto lacking = check_cpu_compatible(more, a);
  ASSERT_FALSE(lacking);
  EXPECT_NE(lacking.error().what.find("CPUID.7:EBX bits 0x00000004"), std::string::npos) << lacking.error().what;

  CpuSignature intel = a;
  std::memcpy(intel.vendor, "GenuineIntel", 12);
  auto vendor = check_cpu_compatible(a, intel);
  ASSERT_FALSE(vendor);
  EXPECT_NE(vendor.error().what.find("AuthenticAMD"), std::string::npos);

  CpuSignature model = a;
  model.leaf1_eax = 0xa50f00;
  EXPECT_FALSE(check_cpu_compatible(a, model));
}

}  // namespace
}  // namespace microvm::snapshot
