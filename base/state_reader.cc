#include "base/state_reader.h"

#include <string>

namespace microvm {

Result<uint16_t> StateReader::header(uint32_t tag, uint16_t max_version) {
  uint32_t got = TRY(u32());
  if (got != tag) return invalid("wrong tag (not a blob of this kind)");
  uint16_t version = TRY(u16());
  if (version == 0 || version > max_version)
    return invalid("version " + std::to_string(version) + " is not supported (this build reads 1 to " +
                   std::to_string(max_version) + ")");
  return version;
}

Result<bool> StateReader::boolean() {
  uint8_t v = TRY(u8());
  if (v > 1) return invalid("boolean is " + std::to_string(v));
  return v == 1;
}

Result<std::span<const std::byte>> StateReader::bytes(size_t max_len) {
  uint32_t len = TRY(u32());
  if (len > max_len)
    return invalid("byte string of " + std::to_string(len) + " bytes exceeds the limit of " + std::to_string(max_len));
  if (remaining() < len) return truncated(len);
  auto out = data_.subspan(pos_, len);
  pos_ += len;
  return out;
}

Result<void> StateReader::expect_end() const {
  if (remaining() != 0) return invalid(std::to_string(remaining()) + " trailing bytes");
  return {};
}

std::unexpected<Error> StateReader::invalid(const std::string& why) const {
  return fail(EINVAL, what_ + " at byte " + std::to_string(pos_) + ": " + why);
}

std::unexpected<Error> StateReader::truncated(size_t wanted) const {
  return fail(EINVAL, what_ + " is truncated at byte " + std::to_string(pos_) + " (needs " + std::to_string(wanted) +
                          " more bytes, has " + std::to_string(remaining()) + ")");
}

}  // namespace microvm
