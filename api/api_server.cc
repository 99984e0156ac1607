#include "api/api_server.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

namespace microvm::api {

struct ApiServer::Client {
  Fd fd;
  HttpConnection http;
  std::string out;           // response bytes not yet written
  bool close_after = false;  // close once `out` is written
  bool streaming = false;    // a GET /events stream: gets event chunks, sends nothing more
  uint32_t interest = 0;
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  Client(Fd f, HttpLimits l) : fd(std::move(f)), http(l) {}
};

struct ApiServer::Clients {
  std::map<int, std::unique_ptr<Client>> by_fd;
};

namespace {

constexpr uint64_t kListenerTag = ~0ull;
constexpr uint64_t kWakeTag = ~0ull - 1;
constexpr uint64_t kEventsTag = ~0ull - 2;
constexpr size_t kMaxPendingOutput = 1 << 20;  // a client that never reads is dropped

Result<Fd> bind_socket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return fail(EINVAL, "API socket path '" + path + "' is empty or longer than " +
                            std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  // Only a stale socket is replaced: a regular file (or anything else) at the path is user
  // data, never deleted.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(EEXIST, "API socket path '" + path + "' exists and is not a socket");
    ::unlink(path.c_str());
  }
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("API socket");
  // fchmod on a socket fd does not set the mode of the file bind() creates; the umask
  // does, so no moment exists in which the socket file is open to others.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) return fail_errno(err, "bind API socket " + path);
  if (::chmod(path.c_str(), 0600) != 0) return fail_errno("chmod API socket " + path);
  if (::listen(fd.get(), 16) != 0) return fail_errno("listen on API socket " + path);
  return fd;
}

// The head of a GET /events answer: chunked, so it has no length and lasts until either
// side closes.
constexpr char kEventStreamHead[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/x-ndjson\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Cache-Control: no-cache\r\n"
    "\r\n";

void append_chunk(std::string& out, const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out += size;
  out += data;
  out += "\r\n";
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, RequestHandler handler, Fd listener, Fd epoll, EventFd wake)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      listener_(std::move(listener)),
      epoll_(std::move(epoll)),
      wake_(std::move(wake)),
      clients_(std::make_unique<Clients>()) {}

Result<std::unique_ptr<ApiServer>> ApiServer::create(ApiServerOptions options, RequestHandler handler) {
  Fd listener = TRY(bind_socket(options.socket_path));
  Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return fail_errno("epoll_create1");
  EventFd wake = TRY(EventFd::create());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenerTag;
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener.get(), &ev) != 0) return fail_errno("epoll_ctl listener");
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, wake.fd(), &ev) != 0) return fail_errno("epoll_ctl wake");
  if (options.events) {
    ev.data.u64 = kEventsTag;
    if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, options.events->wake_fd(), &ev) != 0)
      return fail_errno("epoll_ctl events");
  }
  return std::unique_ptr<ApiServer>(
      new ApiServer(std::move(options), std::move(handler), std::move(listener), std::move(ep), std::move(wake)));
}

ApiServer::~ApiServer() {
  stop();
  if (options_.remove_socket) ::unlink(options_.socket_path.c_str());
}

Result<void> ApiServer::start() {
  try {
    thread_ = std::thread([this] { serve(); });
  } catch (const std::system_error& e) {
    return fail(e.code().value(), std::string("API thread: ") + e.what());
  }
  return {};
}

void ApiServer::stop() {
  if (!thread_.joinable()) return;
  wake_.signal();
  thread_.join();
}

void ApiServer::count(ApiCounter ApiCounters::*which) {
  if (options_.counters) bump(options_.counters->*which);
}

int ApiServer::next_timeout_ms() const {
  using namespace std::chrono;
  auto now = steady_clock::now();
  auto deadline = steady_clock::time_point::max();
  if (options_.on_tick) deadline = next_tick_;
  if (options_.idle_timeout.count() > 0)
    for (const auto& [fd, c] : clients_->by_fd)
      if (!c->streaming) deadline = std::min(deadline, c->last_activity + options_.idle_timeout);
  if (deadline == steady_clock::time_point::max()) return -1;
  if (deadline <= now) return 0;
  // Rounded up, so a wake-up is never a few microseconds early and spins.
  return static_cast<int>(std::min<int64_t>(duration_cast<milliseconds>(deadline - now).count() + 1, 1 << 30));
}

void ApiServer::expire_idle_clients() {
  if (options_.idle_timeout.count() <= 0) return;
  auto now = std::chrono::steady_clock::now();
  std::vector<int> expired;
  for (const auto& [fd, c] : clients_->by_fd)
    if (!c->streaming && now - c->last_activity >= options_.idle_timeout) expired.push_back(fd);
  for (int fd : expired) {
    count(&ApiCounters::connections_timed_out);
    drop(fd);
  }
}

void ApiServer::publish_events() {
  auto lines = options_.events->take_lines();
  if (lines.empty()) return;
  if (options_.counters) options_.counters->events_published.fetch_add(lines.size(), std::memory_order_relaxed);
  std::vector<int> streams;
  for (const auto& [fd, c] : clients_->by_fd)
    if (c->streaming) streams.push_back(fd);
  for (int fd : streams) {
    Client& c = *clients_->by_fd.at(fd);
    for (const auto& line : lines) append_chunk(c.out, line);
    // A reader that does not keep up is dropped: events never wait for it, and its backlog
    // cannot grow without bound.
    if (c.out.size() > options_.max_event_backlog) {
      count(&ApiCounters::slow_readers_dropped);
      drop(fd);
      continue;
    }
    flush(c);
  }
}

void ApiServer::serve() {
  // Named so /proc (and the sandbox tests) can find it among the VM's threads.
  pthread_setname_np(pthread_self(), "vmm-api");
  next_tick_ = std::chrono::steady_clock::now() + options_.tick_interval;
  epoll_event events[16];
  for (;;) {
    if (sandbox_armed_.load() && !sandboxed_) {
      if (options_.enter_sandbox) {
        if (auto ok = options_.enter_sandbox(); !ok) {
          std::fprintf(stderr, "microvm: API server stopped: %s\n", ok.error().what.c_str());
          break;
        }
      }
      sandboxed_ = true;
    }
    int n = ::epoll_wait(epoll_.get(), events, 16, next_timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bool quit = false;
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag)
        quit = true;
      else if (tag == kListenerTag)
        accept_clients();
      else if (tag == kEventsTag)
        publish_events();
      else
        on_client(static_cast<int>(tag), events[i].events);
    }
    if (quit) break;
    if (options_.on_tick && std::chrono::steady_clock::now() >= next_tick_) {
      options_.on_tick();
      next_tick_ = std::chrono::steady_clock::now() + options_.tick_interval;
    }
    expire_idle_clients();
  }
  // Last words for event streams (the VM's "stopped" event is published just before the
  // owner stops the server): what is queued, then the end of the chunked stream, sent as far
  // as the sockets take it without waiting.
  if (options_.events) publish_events();
  for (auto& [fd, c] : clients_->by_fd) {
    if (!c->streaming) continue;
    c->out += "0\r\n\r\n";
    (void)::send(fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  clients_->by_fd.clear();
}

void ApiServer::accept_clients() {
  for (;;) {
    Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;  // EAGAIN: all accepted; other errors: the client went away
    // Over the limit: closed at once, so idle or slow clients cannot starve the rest
    // beyond their own slots, and memory stays bounded.
    if (clients_->by_fd.size() >= options_.max_connections) {
      count(&ApiCounters::connections_refused);
      continue;
    }
    count(&ApiCounters::connections_accepted);
    int raw = fd.get();
    auto c = std::make_unique<Client>(std::move(fd), options_.limits);
    c->interest = EPOLLIN | EPOLLRDHUP;
    epoll_event ev{};
    ev.events = c->interest;
    ev.data.u64 = static_cast<uint64_t>(raw);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, raw, &ev) != 0) continue;
    clients_->by_fd.emplace(raw, std::move(c));
  }
}

void ApiServer::drop(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  clients_->by_fd.erase(fd);
}

void ApiServer::update_interest(Client& c) {
  // While an answer is pending, read nothing more: a pipelining client that never reads
  // cannot make us queue unbounded responses.
  uint32_t want = c.out.empty() ? (EPOLLIN | EPOLLRDHUP) : c.streaming ? (EPOLLOUT | EPOLLRDHUP) : EPOLLOUT;
  if (want == c.interest) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = static_cast<uint64_t>(c.fd.get());
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.interest = want;
}

void ApiServer::flush(Client& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) {
      drop(c.fd.get());
      return;
    }
    c.out.erase(0, static_cast<size_t>(n));
    c.last_activity = std::chrono::steady_clock::now();
  }
  if (c.out.empty() && c.close_after) {
    drop(c.fd.get());
    return;
  }
  update_interest(c);
}

void ApiServer::on_client(int fd, uint32_t events) {
  auto it = clients_->by_fd.find(fd);
  if (it == clients_->by_fd.end()) return;
  Client& c = *it->second;
  if (c.streaming && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
    drop(fd);  // the subscriber went away
    return;
  }
  if (events & EPOLLOUT) {
    flush(c);
    return;
  }
  if (events & EPOLLERR) {
    drop(fd);
    return;
  }
  char buf[4096];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    drop(fd);
    return;
  }
  c.last_activity = std::chrono::steady_clock::now();
  if (c.streaming) return;  // an event stream takes no further requests; what it sends is ignored
  std::vector<HttpConnection::Parsed> requests;
  auto error = c.http.feed(std::string_view(buf, static_cast<size_t>(n)), requests);
  for (auto& r : requests) {
    HttpResponse response = handler_(r.request);
    if (response.event_stream && options_.events) {
      // From here on the connection carries events only; later pipelined requests are dropped.
      c.out += kEventStreamHead;
      c.streaming = true;
      count(&ApiCounters::event_subscribers);
      break;
    }
    c.out += serialize_response(response, !r.keep_alive);
    if (!r.keep_alive) {
      c.close_after = true;
      break;
    }
  }
  if (error && !c.close_after && !c.streaming) {
    count(&ApiCounters::protocol_errors);
    c.out += serialize_response(*error, true);
    c.close_after = true;
  }
  if (c.out.size() > kMaxPendingOutput) {
    count(&ApiCounters::slow_readers_dropped);
    drop(fd);
    return;
  }
  flush(c);
}

}  // namespace microvm::api
