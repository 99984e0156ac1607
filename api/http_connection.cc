#include "api/http_connection.h"

#include <climits>

namespace microvm::api {
namespace {

HttpConnection* self(http_parser* p) { return static_cast<HttpConnection*>(p->data); }

// on_headers_complete's return values 1 and 2 mean "skip the body" and "upgrade", and the
// message would still complete (with an empty body); only other values stop the parser.
constexpr int kHeadersError = -1;

}  // namespace

HttpConnection::HttpConnection(HttpLimits limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &HttpConnection::on_message_begin;
  settings_.on_url = &HttpConnection::on_url;
  settings_.on_header_field = &HttpConnection::on_header_field;
  settings_.on_header_value = &HttpConnection::on_header_value;
  settings_.on_headers_complete = &HttpConnection::on_headers_complete;
  settings_.on_body = &HttpConnection::on_body;
  settings_.on_message_complete = &HttpConnection::on_message_complete;
}

bool HttpConnection::count_header_bytes(size_t len) {
  header_bytes_ += len;
  if (header_bytes_ <= limits_.max_header_bytes) return true;
  limit_error_ = fault(431, "request line and headers exceed " + std::to_string(limits_.max_header_bytes) + " bytes");
  return false;
}

int HttpConnection::on_message_begin(http_parser* p) {
  HttpConnection* c = self(p);
  c->url_.clear();
  c->current_ = HttpRequest{};
  c->header_bytes_ = 0;
  return 0;
}

int HttpConnection::on_url(http_parser* p, const char* at, size_t len) {
  HttpConnection* c = self(p);
  if (!c->count_header_bytes(len)) return 1;
  c->url_.append(at, len);
  return 0;
}

// Header names and values only count against the limit: the API needs none of them
// (Content-Length and keep-alive are tracked by the parser itself).
int HttpConnection::on_header_field(http_parser* p, const char*, size_t len) {
  return self(p)->count_header_bytes(len) ? 0 : 1;
}
int HttpConnection::on_header_value(http_parser* p, const char*, size_t len) {
  return self(p)->count_header_bytes(len) ? 0 : 1;
}

int HttpConnection::on_headers_complete(http_parser* p) {
  HttpConnection* c = self(p);
  // Refuse an announced oversized body before receiving any of it. ULLONG_MAX means "no
  // Content-Length" (chunked or none); on_body enforces the limit for those.
  if (p->content_length != ULLONG_MAX && p->content_length > c->limits_.max_body_bytes) {
    c->limit_error_ = fault(413, "request body exceeds " + std::to_string(c->limits_.max_body_bytes) + " bytes");
    return kHeadersError;
  }
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(c->url_.data(), c->url_.size(), 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
    c->limit_error_ = fault(400, "malformed request target");
    return kHeadersError;
  }
  c->current_.path = c->url_.substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  c->current_.method = http_method_str(static_cast<http_method>(p->method));
  return 0;
}

int HttpConnection::on_body(http_parser* p, const char* at, size_t len) {
  HttpConnection* c = self(p);
  if (c->current_.body.size() + len > c->limits_.max_body_bytes) {
    c->limit_error_ = fault(413, "request body exceeds " + std::to_string(c->limits_.max_body_bytes) + " bytes");
    return 1;
  }
  c->current_.body.append(at, len);
  return 0;
}

int HttpConnection::on_message_complete(http_parser* p) {
  HttpConnection* c = self(p);
  if (c->limit_error_) return 1;  // never hand on a request that broke a limit
  c->out_->push_back(Parsed{std::move(c->current_), http_should_keep_alive(p) != 0});
  c->current_ = HttpRequest{};
  return 0;
}

std::optional<HttpResponse> HttpConnection::feed(std::string_view bytes, std::vector<Parsed>& out) {
  if (failed_) return fault(400, "connection already failed");
  out_ = &out;
  size_t n = http_parser_execute(&parser_, &settings_, bytes.data(), bytes.size());
  out_ = nullptr;
  auto err = HTTP_PARSER_ERRNO(&parser_);
  if (limit_error_) {
    failed_ = true;
    return limit_error_;
  }
  if (err != HPE_OK || n != bytes.size()) {
    failed_ = true;
    return fault(400, std::string("malformed HTTP request: ") + http_errno_description(err));
  }
  return std::nullopt;
}

}  // namespace microvm::api
