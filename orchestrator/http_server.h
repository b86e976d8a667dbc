// The orchestrator's HTTP server (common/http_server.h: one poll(2) thread and its limits): health, the JSON API, Prometheus metrics,
// maintenance (pause/resume) and the embedded dashboard. docs/operations.md is the reference.
//
//   GET  /health                      200 while the loop runs and ZooKeeper is connected, else 503;
//                                     {"status","role":"leader"|"follower","zookeeper",...}
//   GET  /api/clusters                every cluster's summary plus this orchestrator's state
//   GET  /api/clusters/<c>            one cluster: nodes, master, vouchers, control, history
//   GET  /metrics                     Prometheus text format 0.0.4 (metrics.h)
//   POST /api/clusters/<c>/pause      body optional {"reason":"..."}; needs Authorization:
//   POST /api/clusters/<c>/resume     Bearer <token>: none -> 401, wrong -> 403; no token
//                                     configured -> 403 (POST disabled)
//   GET  /, /dashboard.js, /dashboard.css   the dashboard (embedded at build time; no CDN)
//
// Threads: the server's own thread serves every request. It reads only StatusBoard::Snapshot() (an
// immutable copy the loop publishes) and writes the control znode through `ControlWriter` (its
// own ZooKeeper session); it never calls into the orchestrator's loop. A client that connects and
// sends nothing (or sends slowly) holds no thread: it is closed after request_timeout_ms, and
// evicted first when max_connections are open, so /health keeps answering.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/base/clock.h"
#include "common/http_server.h"
#include "common/base/status.h"
#include "orchestrator/metrics.h"
#include "publishers/zk_publisher.h"

namespace pgherald::orchestrator {

// The `http:` section is http::HttpConfig (common/http_server.h):
//   http:
//     address: 127.0.0.1        # default; the address to bind
//     port: 8008                # required, 1..65535 (0 picks a free port: tests)
//     token_file: /etc/pgherald/http-token   # optional; without it POST is disabled
//     max_connections: 64       # open connections, 4..4096; when full, the oldest still
//                               # reading its request is dropped for the new one
//     request_timeout_ms: 5000  # a request must arrive (and its response drain) in this, 100..60000
//     threads: 4                # accepted for old configs; ignored (one event thread)

class HttpServer {
 public:
  // Writes clusters/<c>/control; kNotFound for an unknown cluster.
  using ControlWriter =
      std::function<Status(const std::string& cluster, const publishers::ControlState& control)>;
  using Response = http::Response;

  // Binds and starts serving (common/http_server.h). kUnavailable (naming address and port) when
  // it cannot bind. `board` must outlive the server.
  static StatusOr<std::unique_ptr<HttpServer>> Start(const http::HttpConfig& config,
                                                     const StatusBoard* board,
                                                     ControlWriter control_writer);
  ~HttpServer();  // stops: waits for the request in progress
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return server_->port(); }  // the bound port

 private:
  explicit HttpServer(std::unique_ptr<http::Server> server) : server_(std::move(server)) {}
  std::unique_ptr<http::Server> server_;
};

// The pure part, usable without a server (unit tests).
HttpServer::Response HandleHttp(const http::HttpConfig& config, const ObservabilitySnapshot& snapshot,
                                const HttpServer::ControlWriter& control_writer,
                                const std::string& method, const std::string& uri,
                                const std::string& authorization, const std::string& body,
                                std::int64_t now_ms);

}  // namespace pgherald::orchestrator
