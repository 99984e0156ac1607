#include "boot/acpi/aml.h"

#include <gtest/gtest.h>

namespace microvm {
namespace {

using aml::Bytes;

// Decodes a PkgLength per ACPI 6.4 §20.2.4: bits 7-6 of the lead byte give the number of
// following bytes; with none, bits 5-0 are the length; otherwise bits 3-0 are the low nibble
// and each following byte supplies the next 8 bits. Returns {length, encoding size}.
std::pair<size_t, size_t> decode_pkg_length(const Bytes& b) {
  size_t follow = b.at(0) >> 6;
  if (follow == 0) return {b[0] & 0x3f, 1};
  EXPECT_EQ(b[0] & 0x30, 0) << "bits 5-4 must be zero in a multi-byte PkgLength";
  size_t len = b[0] & 0x0f;
  for (size_t i = 0; i < follow; ++i) len |= size_t{b.at(1 + i)} << (4 + 8 * i);
  return {len, 1 + follow};
}

TEST(Aml, PkgLengthOneByteUpTo63) {
  // The encoded length includes the PkgLength bytes themselves.
  EXPECT_EQ(aml::pkg_length(0), (Bytes{0x01}));
  EXPECT_EQ(aml::pkg_length(62), (Bytes{0x3f}));  // total 63: the largest one-byte value
}

TEST(Aml, PkgLengthTwoBytesFrom64) {
  // Payload 63 needs 64 total with one byte, which does not fit: two bytes, total 65.
  EXPECT_EQ(aml::pkg_length(63), (Bytes{0x41, 0x04}));
  auto [len, size] = decode_pkg_length(aml::pkg_length(63));
  EXPECT_EQ(size, 2u);
  EXPECT_EQ(len, 65u);
  // Payload 4093 + 2 = 4095 = 0xfff, the largest two-byte value.
  EXPECT_EQ(aml::pkg_length(4093), (Bytes{0x4f, 0xff}));
}

TEST(Aml, PkgLengthThreeBytesFrom4096) {
  // Payload 4094 + 2 = 4096 does not fit in 12 bits: three bytes, total 4097 = 0x1001.
  EXPECT_EQ(aml::pkg_length(4094), (Bytes{0x81, 0x00, 0x01}));
  // Largest three-byte value: 2^20 - 1 = payload + 3.
  EXPECT_EQ(aml::pkg_length((1u << 20) - 4), (Bytes{0x8f, 0xff, 0xff}));
  EXPECT_EQ(aml::pkg_length((1u << 20) - 3).size(), 4u);
}

TEST(Aml, PkgLengthRoundTripsEverywhere) {
  for (size_t payload : {0ul, 1ul, 61ul, 62ul, 63ul, 64ul, 100ul, 4092ul, 4093ul, 4094ul, 4095ul, 4096ul, 70000ul,
                         (1ul << 20) - 4, (1ul << 20) - 3, (1ul << 27)}) {
    Bytes enc = aml::pkg_length(payload);
    auto [len, size] = decode_pkg_length(enc);
    EXPECT_EQ(size, enc.size()) << payload;
    EXPECT_EQ(len, payload + enc.size()) << payload;
    // Smallest encoding: one fewer byte could not have held the length.
    if (enc.size() == 2) {
      EXPECT_GE(payload + 1, 0x40u) << payload;
    }
    if (enc.size() == 3) {
      EXPECT_GE(payload + 2, 0x1000u) << payload;
    }
    if (enc.size() == 4) {
      EXPECT_GE(payload + 3, 0x100000u) << payload;
    }
  }
}

TEST(Aml, Integers) {
  EXPECT_EQ(aml::integer(0), (Bytes{0x00}));
  EXPECT_EQ(aml::integer(1), (Bytes{0x01}));
  EXPECT_EQ(aml::integer(2), (Bytes{0x0a, 0x02}));
  EXPECT_EQ(aml::integer(0xff), (Bytes{0x0a, 0xff}));
  EXPECT_EQ(aml::integer(0x100), (Bytes{0x0b, 0x00, 0x01}));
  EXPECT_EQ(aml::integer(0x12345678), (Bytes{0x0c, 0x78, 0x56, 0x34, 0x12}));
  EXPECT_EQ(aml::integer(0x100000000ull), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(Aml, EisaIdPnp0a03) {
  // EISAID("PNP0A03") is the DWord 0x030AD041, stored little-endian.
  EXPECT_EQ(aml::eisa_id("PNP0A03"), (Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03}));
  // PNP0C0F (PCI interrupt link) = 0x0F0CD041, lower-case hex accepted.
  EXPECT_EQ(aml::eisa_id("PNP0c0f"), (Bytes{0x0c, 0x41, 0xd0, 0x0c, 0x0f}));
}

TEST(Aml, NameStringAndPackage) {
  EXPECT_EQ(aml::string("ab"), (Bytes{0x0d, 'a', 'b', 0}));
  EXPECT_EQ(aml::name("_UID", aml::integer(0)), (Bytes{0x08, '_', 'U', 'I', 'D', 0x00}));
  EXPECT_EQ(aml::name("AB", aml::integer(1)), (Bytes{0x08, 'A', 'B', '_', '_', 0x01}));  // padded
  EXPECT_EQ(aml::package({aml::integer(5), aml::integer(0)}), (Bytes{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}));
  EXPECT_EQ(aml::buffer({1, 2}), (Bytes{0x11, 0x05, 0x0a, 0x02, 1, 2}));
}

TEST(Aml, DeviceAndScopeCarryLengths) {
  Bytes dev = aml::device("DEV0", {aml::name("_UID", aml::integer(0))});
  ASSERT_GE(dev.size(), 3u);
  EXPECT_EQ(dev[0], 0x5b);
  EXPECT_EQ(dev[1], 0x82);
  auto [len, size] = decode_pkg_length(Bytes(dev.begin() + 2, dev.end()));
  EXPECT_EQ(len, dev.size() - 2);  // PkgLength covers everything after the opcode
  Bytes sc = aml::scope("\\_SB_", {dev});
  EXPECT_EQ(sc[0], 0x10);
  auto [slen, ssize] = decode_pkg_length(Bytes(sc.begin() + 1, sc.end()));
  EXPECT_EQ(slen, sc.size() - 1);
  EXPECT_EQ(sc[1 + ssize], '\\');
  // A big body switches to a multi-byte length and stays consistent.
  Bytes big(5000, 0xa3);
  Bytes buf = aml::buffer(big);
  auto [blen, bsize] = decode_pkg_length(Bytes(buf.begin() + 1, buf.end()));
  EXPECT_EQ(bsize, 3u);
  EXPECT_EQ(blen, buf.size() - 1);
}

TEST(Aml, ResourceDescriptors) {
  EXPECT_EQ(aml::res::io_port(0xcf8, 8), (Bytes{0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08}));
  Bytes bus = aml::res::bus_number_range(0, 0);
  EXPECT_EQ(bus.size(), 16u);
  EXPECT_EQ(bus[1] | (bus[2] << 8), 13);   // length field excludes the 3-byte header
  EXPECT_EQ(bus[14] | (bus[15] << 8), 1);  // one bus
  Bytes mem = aml::res::memory32_range(0xc0000000, 0xcfffffff);
  EXPECT_EQ(mem.size(), 26u);
  EXPECT_EQ(mem[1] | (mem[2] << 8), 23);
  EXPECT_EQ(mem[22] | (mem[23] << 8) | (mem[24] << 16) | (uint32_t{mem[25]} << 24), 0x10000000u);
  EXPECT_EQ(aml::res::end_tag(), (Bytes{0x79, 0x00}));
}

}  // namespace
}  // namespace microvm
