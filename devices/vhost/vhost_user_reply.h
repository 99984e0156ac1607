#pragma once
// Validation of a backend's reply, separate from the socket so unit tests and the fuzz target
// can feed it arbitrary bytes. The backend is another process we do not trust: a reply that
// is not exactly what the request asked for is an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"
#include "devices/vhost/vhost_user_protocol.h"

namespace microvm::vhost_user {

// Checks a reply header against the request it answers: version 1, the reply flag set, the
// same request id, and a payload of exactly `expected_size` bytes (every reply we read has a
// fixed size: u64 or VringState).
[[nodiscard]] Result<void> check_reply_header(const Header& header, Request expected, uint32_t expected_size);

// Parses a whole reply (header + payload) to `expected` into `out`, which must be exactly the
// payload size. For the fuzz target and tests; the client reads header and payload separately.
[[nodiscard]] Result<void> parse_reply(std::span<const std::byte> bytes, Request expected, std::span<std::byte> out);

// REPLY_ACK payload: 0 means success; anything else is the backend's failure.
[[nodiscard]] Result<void> check_ack(uint64_t value, Request request);

const char* request_name(Request r);

}  // namespace microvm::vhost_user
