// The daemons' small HTTP server: one poll(2) thread, one request per connection, handlers that
// must not block for long. The orchestrator serves its API, dashboard and /metrics through it
// (orchestrator/http_server.h); the poller and the watch serve /metrics and /health.
//
// Limits (hostile clients): at most max_connections open, and when full a new connection evicts
// the oldest one still reading its request; a request (head and body) must arrive within
// request_timeout and its response drain within request_timeout again; heads up to 16 KiB (431
// beyond), bodies up to 64 KiB (413 beyond), no chunked bodies (411); "Connection: close".
// Idle or slow clients hold no thread, so /health keeps answering while they sit there.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/base/clock.h"
#include "common/config.h"
#include "common/base/status.h"

namespace pgherald::http {

// The listening part of an `http:` section:
//   http:
//     address: 127.0.0.1        # default; the address to bind
//     port: 9187                # required, 0..65535 (0 picks a free port: tests)
//     max_connections: 64       # 4..4096
//     request_timeout_ms: 5000  # 100..60000
struct ListenConfig {
  std::string address = "127.0.0.1";
  int port = 0;
  int max_connections = 64;
  Millis request_timeout{5000};
};

// The orchestrator's `http:` section (absent: no HTTP server): the listening part plus
//     token_file: /etc/pgherald/http-token   # optional; without it POST is disabled
//     threads: 4                # accepted for old configs; ignored (one event thread)
// (orchestrator/orchestrator_config.cc parses it, orchestrator/http_server.h serves it).
struct HttpConfig : ListenConfig {
  std::optional<std::string> token;  // the secret read from token_file (never logged)
  std::string token_file;            // for messages
  int threads = 4;                   // ignored
};

// Reads address, port, max_connections and request_timeout_ms from `node` (errors recorded in the
// document, reported by its Finish()).
ListenConfig ParseListen(config::ConfigNode& node);
// The poller's and the watch's optional `http:` section (only these keys): absent -> no server.
std::optional<ListenConfig> ParseOptionalListen(config::ConfigNode root);

struct Request {
  std::string method;
  std::string uri;            // as sent, query included
  std::string path;           // the uri without query, without a trailing '/' (except "/")
  std::string authorization;  // the Authorization header's value
  std::string body;
};

struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string www_authenticate;  // set on 401
};

// {"error": message} as application/json.
Response ErrorResponse(int status, const std::string& message);

// Runs on the server's thread; an exception becomes a 500 (logged).
using Handler = std::function<Response(const Request&)>;

class Server {
 public:
  // Binds and starts serving. kUnavailable (naming address and port) when it cannot bind.
  // `post_note` goes into the http_listening log line (e.g. "disabled (no token_file)").
  static StatusOr<std::unique_ptr<Server>> Start(const ListenConfig& config, Handler handler,
                                                 const std::string& post_note = "disabled");
  ~Server();  // stops: waits for the request in progress
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;  // the bound port

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgherald::http
