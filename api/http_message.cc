#include "api/http_message.h"

#include <nlohmann/json.hpp>

namespace microvm::api {

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
  }
  return "Unknown";
}

std::string serialize_response(const HttpResponse& r, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\n";
  out += "Server: microvm\r\n";
  if (!r.body.empty()) out += "Content-Type: application/json\r\n";
  // 204 carries no body and, per RFC 9110, no Content-Length either.
  if (r.status != 204) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (r.status != 204) out += r.body;
  return out;
}

HttpResponse fault(int status, const std::string& message) {
  // dump() with replacement: a message quoting client bytes must not make dump() throw.
  nlohmann::json j = {{"fault_message", message}};
  return HttpResponse{status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

}  // namespace microvm::api
