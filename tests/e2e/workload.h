// The drills' writing clients: threads that each write unique, sequenced rows
// (INSERT INTO e2e_writes (client, seq) ... RETURNING inet_server_port()) through HAProxy or
// through pgbouncer, one statement per write, and record on the monotonic clock each write's
// invocation and its acknowledgement (with the server port that acknowledged it) or failure.
// Connects and statements have their own short deadlines (asynchronous libpq + poll), so a frozen
// or dead server costs a client at most `op_timeout`; after any failure the connection is dropped
// and a new one made. Test code only.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pgherald::e2e {

enum class Route { kHaproxy, kPgbouncer };
const char* RouteName(Route route);

struct WriteOp {
  int client = 0;
  std::int64_t seq = 0;
  Route route = Route::kHaproxy;
  std::int64_t invoke_ns = 0;  // MonoNs() before the statement was sent
  std::int64_t done_ns = 0;    // MonoNs() at the acknowledgement or the failure
  bool acked = false;          // committed: the server answered with a row
  int port = 0;                // inet_server_port() of the acknowledging server
  std::string error;           // failures: why (the outcome is unknown: it may have committed)
};

struct WorkloadOptions {
  std::string haproxy_conninfo;
  std::string pgbouncer_conninfo;
  int clients_per_route = 2;
  int client_base = 0;  // client ids are client_base + 0.. ; unique per drill
  std::chrono::milliseconds op_timeout{1000};
  std::chrono::microseconds pause{1000};  // between writes of one client (pacing, not sync)
};

class Workload {
 public:
  explicit Workload(WorkloadOptions options);
  ~Workload();  // Stop()
  void Start();
  void Stop();

  // Copies of the history so far (every write, in no particular order).
  std::vector<WriteOp> History() const;
  // The done_ns of the first acknowledged write through `route` on `port` invoked at or after
  // `after_ns`; 0 when none yet.
  std::int64_t FirstAck(Route route, int port, std::int64_t after_ns) const;
  // Acknowledged writes through `route` on `port` so far.
  int Acks(Route route, int port) const;
  // The last `n` failures through `route` (error text and the time), for a failure message.
  std::string RecentErrors(Route route, int n) const;
  // The latest done_ns of an acknowledged write through `route` before `before_ns`; 0 if none.
  std::int64_t LastAckBefore(Route route, std::int64_t before_ns) const;

 private:
  void Run(int client, Route route, const std::string& conninfo);
  void Record(const WriteOp& op);

  WorkloadOptions options_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::vector<WriteOp> ops_;
};

}  // namespace pgherald::e2e
