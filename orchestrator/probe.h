// Direct probes of PostgreSQL nodes by the orchestrator, and the write check.
//
// NodeProber is the seam: the orchestrator's loop asks it for probes of every node of a cluster
// and for write checks of the nodes Decide's WriteCheckTargets() names; the simulation test puts a
// simulated world behind it, the daemon PgNodeProber (libpq).
//
// PgNodeProber keeps one connection per node and multiplexes every node in flight on one event
// loop (libpq's non-blocking API and poll(2)), run on the caller's thread during ProbeAll and
// WriteCheckAll: no thread per node or per call. A hung node cannot stall the others: the call
// returns by its deadline with every node that did not answer reported unreachable ("probe timed
// out"); that node's work stays in flight, bounded by its own connect and answer timeouts
// (enforced by the loop: libpq enforces none in this mode), progresses during later calls, and
// the node is reported "previous probe still running" until it ends. Between calls a thread of
// the prober's own keeps stepping that work (it holds the loop only while no call wants it): a
// connection attempt, a SCRAM exchange above all, would otherwise stall while the orchestrator
// reads ZooKeeper and run out its connect_timeout, and at 1,000 clusters the start-up opened about
// 1.6 connections a second (docs/benchmarks.md). A connection whose answer
// timed out is closed (the backend notices); one that failed at connection level is reconnected
// on the next call. Connections are keyed by node name, host, port, database and user: the rounds
// of several clusters probed in one call (a batch) that name the same node share its connection
// and its answer. Host names are resolved by libpq inside the loop (blocking): configure nodes
// by address.
//
// While nothing is in flight, the prober's thread also watches the kept connections: one that the
// server closes (a crash or kill of PostgreSQL, postmaster death, a fast shutdown: each backend
// ends its session, usually with a FATAL first) is dropped and reported at once to the
// connection-lost handler, so that the orchestrator verifies the clusters of that node now instead
// of at their next periodic verification (docs/orchestrator.md, "A closed connection"). A lost
// host (no FIN, no RST) is not noticed here: the periodic verification and the probe's timeouts
// find it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/clock.h"
#include "common/model/cluster_model.h"
#include "common/pg_connection.h"

namespace pgherald::orchestrator {

// One PostgreSQL node to probe: its name in the cluster and how to connect to it.
struct NodeTarget {
  std::string name;
  pg::PgParams params;  // host, port, credentials, timeouts
};

// What the write check writes: the heartbeat row is keyed by (cluster, node, orchestrator).
struct WriteCheckContext {
  std::string cluster;
  std::string orchestrator_id;
  bool operator==(const WriteCheckContext&) const = default;
};

// One write check of a batch: the node, and the cluster whose round asks for it (the rounds of
// several clusters share one call: docs/orchestrator.md, "Batches").
struct WriteCheckRequest {
  NodeTarget target;
  WriteCheckContext context;
};

class NodeProber {
 public:
  virtual ~NodeProber() = default;
  // Probes every target (role, live timeline, LSN, system_identifier); one Probe per target, in
  // the targets' order, all returned by `deadline` (later ones are unreachable with an error).
  // Targets may come from several clusters: two with the same name, host and port are the same
  // node and each gets its answer.
  virtual std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets,
                                             MonoTime deadline) = 0;
  // Runs the write check on each request's target with the request's own context and returns its
  // probe with write_check and write_error filled in (and in_recovery, timeline, lsn refreshed
  // from the same session); one Probe per request, in order, by `deadline`.
  virtual std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                                   MonoTime deadline) = 0;
  // WriteCheckEach with one context for every target (one cluster's round).
  std::vector<model::Probe> WriteCheckAll(const std::vector<NodeTarget>& targets,
                                          const WriteCheckContext& context, MonoTime deadline);
  // Closes what is kept for `targets` (their connections): nodes that are gone. A probe still
  // running for one of them is abandoned (PgNodeProber closes its connection at once).
  virtual void Forget(const std::vector<NodeTarget>& targets) { (void)targets; }
  // Opens, without waiting, the connections that `targets` lack: nodes of clusters this instance
  // is next in line to own (docs/orchestrator.md, "Connections kept for a takeover"), so that a
  // takeover probes over open connections instead of opening them all at once. Each attempt ends
  // with a probe whose answer nobody reads, unless a call asks for that node's probe while it is
  // still connecting (it then gets that probe). A target with a connection costs a lookup.
  virtual void Warm(const std::vector<NodeTarget>& targets) { (void)targets; }
};

// The SQL the probe runs, one round trip: in_recovery, timeline, lsn, system_identifier.
extern const char* const kProbeSql;

// Escapes a string as a SQL literal ('...' with quotes doubled). Rejects NUL bytes.
StatusOr<std::string> SqlLiteral(const std::string& value);

// The real prober, over libpq. Thread-safe for one caller at a time.
class PgNodeProber final : public NodeProber {
 public:
  // At most `max_connecting` connection attempts are in flight at once; the targets that need
  // one beyond that wait for a turn within the call, and those whose turn does not come by the
  // deadline are reported unreachable ("not probed: ...") and tried again on the next call.
  explicit PgNodeProber(const Clock* clock = &SystemClock::Instance(),
                        int max_connecting = kMaxConnecting);
  static constexpr int kMaxConnecting = 16;
  ~PgNodeProber() override;

  std::vector<model::Probe> ProbeAll(const std::vector<NodeTarget>& targets,
                                     MonoTime deadline) override;
  std::vector<model::Probe> WriteCheckEach(const std::vector<WriteCheckRequest>& requests,
                                           MonoTime deadline) override;
  void Forget(const std::vector<NodeTarget>& targets) override;
  // Starts attempts only while fewer than half of max_connecting are in flight (the calls keep
  // the other half); the targets left over are tried at a later Warm. Never waits.
  void Warm(const std::vector<NodeTarget>& targets) override;
  // Called on the prober's thread, without the prober's lock, with the host and port of a kept
  // connection that the server closed while it was idle. Null: none (kept connections are then
  // not watched). Setting it waits for a call in progress to return, so a handler may be cleared
  // before what it refers to goes away.
  using ConnectionLost = std::function<void(const std::string& host, int port)>;
  void SetConnectionLostHandler(ConnectionLost handler);
  // Connections kept (tests).
  std::size_t kept() const;
  // Readable idle connections the prober's thread has read (tests).
  std::size_t idle_reads() const { return idle_reads_; }
  // Jobs still in flight, stepped between calls by the prober's thread (tests).
  std::size_t in_flight() const;

  // One node, synchronously, on the caller's thread (the same state machine, alone on its loop,
  // bounded by the node's own timeouts). `conn` is the node's cached connection: connected when
  // null or broken, dropped after a connection-level failure.
  static model::Probe ProbeOnce(const NodeTarget& target, std::unique_ptr<pg::PgConnection>* conn,
                                const WriteCheckContext* write_check, const Clock& clock);

  struct Slot;  // one node's connection and the work in flight on it

 private:
  // Probes (`contexts` null) or write-checks (`contexts` parallel to `targets`) every target.
  // Targets that share a slot (the same node, asked for by several clusters' rounds) share one
  // job: one probe, or one write transaction with a heartbeat row per distinct context.
  std::vector<model::Probe> RunAll(const std::vector<NodeTarget>& targets,
                                   const std::vector<WriteCheckContext>* contexts,
                                   MonoTime deadline);

  std::size_t Connecting() const;  // jobs in active_ still connecting
  // mu_, taken from the background thread (woken out of its poll(2) first).
  std::unique_lock<std::mutex> Lock() const;
  // The background thread: steps the jobs in active_ while no call holds the loop.
  void Background();
  // With nothing in flight: polls the idle kept connections (and wake_fd_) until one is readable
  // or a call wants the loop; drops the connections the server closed and reports them (lock_
  // released meanwhile). False when there is nothing to watch.
  bool WatchIdle(std::unique_lock<std::mutex>& lock);

  const Clock* clock_;
  const std::size_t max_connecting_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;  // by "name@host:port/dbname as user"
  std::vector<Slot*> active_;  // slots with work in flight (owned by slots_)
  // The background thread's wake-up: an eventfd it polls beside the jobs' sockets; callers_
  // counts the calls waiting for mu_ (the thread gives the loop up while it is not zero).
  int wake_fd_ = -1;
  mutable std::atomic<int> callers_{0};
  std::condition_variable work_;  // active_ gained jobs, or the prober is closing
  bool closing_ = false;          // under mu_
  bool rewatch_ = false;          // under mu_: kept connections changed, watch them anew
  std::mutex handler_mu_;         // held while the handler runs, and to change it
  ConnectionLost lost_handler_;   // under handler_mu_
  std::atomic<bool> watch_idle_{false};  // a handler is set
  std::atomic<std::size_t> idle_reads_{0};
  std::thread background_;
};

}  // namespace pgherald::orchestrator
