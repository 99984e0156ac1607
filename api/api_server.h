#pragma once
// The transport: HTTP/1.1 over a Unix socket, served by one thread with epoll. Every
// socket is non-blocking, so a client that sends half a request (or never reads its
// answer) only holds its own connection slot; the limits below bound what clients can
// make the server hold. What a request means is the handler's business (router.h).
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "api/api_counters.h"
#include "api/event_hub.h"
#include "api/http_connection.h"
#include "base/event_fd.h"
#include "base/fd.h"
#include "microvm/result.h"

namespace microvm::api {

using RequestHandler = std::function<HttpResponse(const HttpRequest&)>;

struct ApiServerOptions {
  std::string socket_path;
  // Unlink socket_path on destruction; false when something else does (a jailed VMM cannot
  // reach the path, its launcher removes it).
  bool remove_socket = true;
  size_t max_connections = 16;
  HttpLimits limits;
  // A connection with no request in progress and nothing sent or received for this long is
  // closed (event streams excepted), so idle clients do not keep slots forever. Zero: never.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // Unsent event bytes one GET /events client may have; past it the client is dropped.
  size_t max_event_backlog = 256 * 1024;
  // Called on the server thread every `tick_interval` (the periodic metrics flush).
  std::function<void()> on_tick;
  std::chrono::milliseconds tick_interval{std::chrono::seconds(60)};
  // Where the transport counts connections and refusals (null: not counted).
  ApiCounters* counters = nullptr;
  // Source of GET /events lines (null: no event streams).
  EventHub* events = nullptr;
  // Runs on the server thread, before the first request after arm_sandbox(): installs the
  // thread's seccomp filter. A failure stops the server (it never serves unfiltered after
  // the sandbox was asked for).
  std::function<Result<void>()> enter_sandbox;
};

class ApiServer {
 public:
  // Binds the socket (mode 0600; refuses to replace anything but a stale socket).
  [[nodiscard]] static Result<std::unique_ptr<ApiServer>> create(ApiServerOptions options, RequestHandler handler);
  ~ApiServer();  // stops the thread and removes the socket (options.remove_socket)

  // Starts serving on a new thread.
  [[nodiscard]] Result<void> start();
  // Thread-safe. The server thread enters its sandbox before serving another request.
  void arm_sandbox() { sandbox_armed_.store(true); }
  // Stops the thread (idempotent); the socket file is removed.
  void stop();

 private:
  struct Client;
  ApiServer(ApiServerOptions options, RequestHandler handler, Fd listener, Fd epoll, EventFd wake);
  void serve();
  void accept_clients();
  void on_client(int fd, uint32_t events);
  void flush(Client& c);
  void update_interest(Client& c);
  void drop(int fd);
  void publish_events();
  void expire_idle_clients();
  int next_timeout_ms() const;
  void count(ApiCounter ApiCounters::*which);

  ApiServerOptions options_;
  RequestHandler handler_;
  Fd listener_;
  Fd epoll_;
  EventFd wake_;
  std::thread thread_;
  std::atomic<bool> sandbox_armed_{false};
  bool sandboxed_ = false;
  std::chrono::steady_clock::time_point next_tick_;
  struct Clients;
  std::unique_ptr<Clients> clients_;
};

}  // namespace microvm::api
