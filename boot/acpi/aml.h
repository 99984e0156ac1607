#pragma once
// A small AML (ACPI Machine Language) encoder: just the constructs our DSDT needs.
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

namespace microvm::aml {

using Bytes = std::vector<uint8_t>;

Bytes integer(uint64_t v);  // ZeroOp/OneOp/Byte/Word/DWord/QWord
Bytes string(std::string_view s);
Bytes eisa_id(std::string_view id);                        // "PNP0A03" -> compressed DWord
Bytes name(std::string_view nameseg, const Bytes& value);  // Name(XXXX, value)
Bytes package(std::initializer_list<Bytes> elements);
Bytes buffer(const Bytes& contents);
Bytes device(std::string_view nameseg, std::initializer_list<Bytes> body);
Bytes scope(std::string_view path, std::initializer_list<Bytes> body);
Bytes concat(std::initializer_list<Bytes> parts);

// PkgLength encoding (ACPI 6.4 §20.2.4); `payload` excludes the length bytes themselves.
Bytes pkg_length(size_t payload);

// Resource descriptors (ACPI 6.4 §6.4) for a _CRS buffer.
namespace res {
Bytes bus_number_range(uint16_t min, uint16_t max);
Bytes io_port(uint16_t base, uint8_t len);
Bytes memory32_range(uint32_t min, uint32_t max);
Bytes end_tag();
}  // namespace res

}  // namespace microvm::aml
