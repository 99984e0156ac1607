#include "boot/acpi/aml.h"

#include <cassert>

namespace microvm::aml {
namespace {

void append(Bytes& out, const Bytes& in) { out.insert(out.end(), in.begin(), in.end()); }

void put_le(Bytes& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_nameseg(Bytes& out, std::string_view s) {
  // Name segments are exactly four characters, padded with '_'.
  for (size_t i = 0; i < 4; ++i) out.push_back(i < s.size() ? static_cast<uint8_t>(s[i]) : '_');
}

Bytes with_pkg(uint8_t op, const Bytes& payload, bool ext = false) {
  Bytes out;
  if (ext) out.push_back(0x5b);
  out.push_back(op);
  append(out, pkg_length(payload.size()));
  append(out, payload);
  return out;
}

}  // namespace

Bytes pkg_length(size_t payload) {
  // The length counts its own encoding bytes too; pick the smallest encoding that fits.
  if (payload + 1 < 0x40) return {static_cast<uint8_t>(payload + 1)};
  for (size_t extra = 1; extra <= 3; ++extra) {
    size_t total = payload + 1 + extra;
    if (total < (size_t{1} << (4 + 8 * extra))) {
      Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0xf))};
      for (size_t i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
      return out;
    }
  }
  assert(false && "AML package too large");
  return {};
}

Bytes integer(uint64_t v) {
  Bytes out;
  if (v == 0) return {0x00};
  if (v == 1) return {0x01};
  if (v <= 0xff) {
    out = {0x0a};
    put_le(out, v, 1);
  } else if (v <= 0xffff) {
    out = {0x0b};
    put_le(out, v, 2);
  } else if (v <= 0xffffffff) {
    out = {0x0c};
    put_le(out, v, 4);
  } else {
    out = {0x0e};
    put_le(out, v, 8);
  }
  return out;
}

Bytes string(std::string_view s) {
  Bytes out{0x0d};
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
  return out;
}

Bytes eisa_id(std::string_view id) {
  // Three letters (5 bits each, 'A' = 1) then four hex digits, stored big-endian.
  auto hexval = [](char c) -> uint32_t { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  uint32_t v = ((id[0] - '@') << 26) | ((id[1] - '@') << 21) | ((id[2] - '@') << 16) | (hexval(id[3]) << 12) |
               (hexval(id[4]) << 8) | (hexval(id[5]) << 4) | hexval(id[6]);
  v = __builtin_bswap32(v);
  Bytes out{0x0c};
  put_le(out, v, 4);
  return out;
}

Bytes name(std::string_view nameseg, const Bytes& value) {
  Bytes out{0x08};
  put_nameseg(out, nameseg);
  append(out, value);
  return out;
}

Bytes package(std::initializer_list<Bytes> elements) {
  Bytes payload{static_cast<uint8_t>(elements.size())};
  for (const auto& e : elements) append(payload, e);
  return with_pkg(0x12, payload);
}

Bytes buffer(const Bytes& contents) {
  Bytes payload = integer(contents.size());
  append(payload, contents);
  return with_pkg(0x11, payload);
}

Bytes device(std::string_view nameseg, std::initializer_list<Bytes> body) {
  Bytes payload;
  put_nameseg(payload, nameseg);
  for (const auto& b : body) append(payload, b);
  return with_pkg(0x82, payload, /*ext=*/true);
}

Bytes scope(std::string_view path, std::initializer_list<Bytes> body) {
  Bytes payload;
  if (!path.empty() && path[0] == '\\') {
    payload.push_back('\\');
    path.remove_prefix(1);
  }
  put_nameseg(payload, path);
  for (const auto& b : body) append(payload, b);
  return with_pkg(0x10, payload);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) append(out, p);
  return out;
}

namespace res {

Bytes bus_number_range(uint16_t min, uint16_t max) {
  // Word Address Space Descriptor, resource type 2 (bus number), producer, min/max fixed.
  Bytes out{0x88, 13, 0, 2, 0x0c, 0};
  put_le(out, 0, 2);  // granularity
  put_le(out, min, 2);
  put_le(out, max, 2);
  put_le(out, 0, 2);              // translation offset
  put_le(out, max - min + 1, 2);  // length
  return out;
}

Bytes io_port(uint16_t base, uint8_t len) {
  Bytes out{0x47, 0x01};  // I/O port descriptor, 16-bit decode
  put_le(out, base, 2);
  put_le(out, base, 2);
  out.push_back(1);  // alignment
  out.push_back(len);
  return out;
}

Bytes memory32_range(uint32_t min, uint32_t max) {
  // DWord Address Space Descriptor, memory, producer, min/max fixed, read-write, non-cacheable.
  Bytes out{0x87, 23, 0, 0, 0x0c, 0x01};
  put_le(out, 0, 4);
  put_le(out, min, 4);
  put_le(out, max, 4);
  put_le(out, 0, 4);
  put_le(out, uint64_t{max} - min + 1, 4);
  return out;
}

Bytes end_tag() { return {0x79, 0x00}; }

}  // namespace res
}  // namespace microvm::aml
