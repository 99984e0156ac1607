#include "devices/vhost/vhost_user_reply.h"

#include <cstring>
#include <string>

namespace microvm::vhost_user {

const char* request_name(Request r) {
  switch (r) {
    case Request::kGetFeatures:
      return "GET_FEATURES";
    case Request::kSetFeatures:
      return "SET_FEATURES";
    case Request::kSetOwner:
      return "SET_OWNER";
    case Request::kResetOwner:
      return "RESET_OWNER";
    case Request::kSetMemTable:
      return "SET_MEM_TABLE";
    case Request::kSetVringNum:
      return "SET_VRING_NUM";
    case Request::kSetVringAddr:
      return "SET_VRING_ADDR";
    case Request::kSetVringBase:
      return "SET_VRING_BASE";
    case Request::kGetVringBase:
      return "GET_VRING_BASE";
    case Request::kSetVringKick:
      return "SET_VRING_KICK";
    case Request::kSetVringCall:
      return "SET_VRING_CALL";
    case Request::kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum:
      return "GET_QUEUE_NUM";
    case Request::kSetVringEnable:
      return "SET_VRING_ENABLE";
    case Request::kGetConfig:
      return "GET_CONFIG";
  }
  return "request";
}

Result<void> check_reply_header(const Header& h, Request expected, uint32_t expected_size) {
  std::string what = std::string("vhost-user reply to ") + request_name(expected) + ": ";
  if ((h.flags & kVersionMask) != kVersion)
    return fail(EPROTO, what + "wrong protocol version " + std::to_string(h.flags & kVersionMask));
  if (!(h.flags & kFlagReply)) return fail(EPROTO, what + "reply flag not set");
  if (h.request != static_cast<uint32_t>(expected))
    return fail(EPROTO, what + "answers request " + std::to_string(h.request) + " instead");
  if (h.size != expected_size)
    return fail(EPROTO,
                what + "payload of " + std::to_string(h.size) + " bytes, expected " + std::to_string(expected_size));
  return {};
}

Result<void> parse_reply(std::span<const std::byte> bytes, Request expected, std::span<std::byte> out) {
  if (bytes.size() < sizeof(Header))
    return fail(EPROTO, std::string("vhost-user reply to ") + request_name(expected) + ": short header");
  Header h;
  std::memcpy(&h, bytes.data(), sizeof h);
  TRY(check_reply_header(h, expected, static_cast<uint32_t>(out.size())));
  if (bytes.size() - sizeof(Header) != out.size())
    return fail(EPROTO, std::string("vhost-user reply to ") + request_name(expected) + ": truncated payload");
  std::memcpy(out.data(), bytes.data() + sizeof(Header), out.size());
  return {};
}

Result<void> check_ack(uint64_t value, Request request) {
  if (value != 0)
    return fail(EIO, std::string("vhost-user backend failed ") + request_name(request) + " (status " +
                         std::to_string(value) + ")");
  return {};
}

}  // namespace microvm::vhost_user
