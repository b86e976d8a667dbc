// FakeZk: an in-memory ZooKeeper for unit tests and the orchestrator's randomized simulation. A
// test double: built into pgherald_test_support (tests/support), never into a product target.
//
// A FakeZkServer holds the tree (zxids, versions, cversions, ephemeral owners, sequence numbers
// taken from the parent's cversion and zero-padded to 10 digits, as ZooKeeper does) and is shared
// by any number of FakeZk sessions. Each FakeZk is one ZkSession with the same contract as the real
// ZkClient (tests/zk_contract runs one suite against both), plus fault injection:
//
//   server->ExpireSession(id)   the server drops the session: its ephemerals go at once (other
//                               sessions' watches fire), its watches are dropped. A connected
//                               session turns kExpired at once; a disconnected one keeps reporting
//                               kConnecting until Reconnect(), exactly like a partitioned C client.
//   session->Disconnect()       calls fail with kConnectionLoss, state kConnecting, the lease counts
//                               down on the server's Clock from the moment of the disconnect. If the
//                               clock passes disconnect + session timeout the server expires the
//                               session by itself (checked whenever the server is touched, or by
//                               ExpireOverdueSessions()). Watch events meanwhile are held back.
//   session->Reconnect()        kConnected again (held-back watch events are delivered after the
//                               state change), or kExpired if the server expired it meanwhile.
//   ACLs                        every node has one (default world:anyone ALL, as ZooKeeper's open
//                               ACL). A session's identity is FakeZkOptions::digest_id (the
//                               "user:base64(sha1)" id a digest auth would give it). Enforced as
//                               ZooKeeper does: READ for Get/GetChildren (not Exists), WRITE for
//                               Set, CREATE/DELETE on the parent for Create/Delete, ADMIN for
//                               SetAcl; kPermissionDenied (NoAuth) otherwise. "auth" entries of a
//                               created node's ACL expand to the creator's digest id. GetAcl shows
//                               digest ids as "user:x" to a session without ADMIN, as 3.8 does.
//   session->FailNextCall(code, applied)
//                               the next data call returns `code`; with applied=true the call takes
//                               effect first (connection loss after a write: the unknown outcome).
//                               Faults queue up: each call consumes one.
//
// While connected, a session behaves as if its periodic pings were answered continuously, so its
// lease is full; lease = lease_fraction x session_timeout.
//
// Asynchronous calls (GetAsync, ExistsAsync, GetChildrenAsync, MultiAsync) follow ZkSession's contract: the
// call runs at once and its answer is queued with the events, before any event the call's watch
// fires later; the session's dispatch thread is also its completion thread (so WatchDelivery
// changes nothing). A request is not sent (its error returned) unless the session is connected; an
// injected fault is the answer. Answers still queued at Close() run on its caller, kUnavailable.
//
// Dispatch: kThread (the default) runs watchers, state listeners and answers on one thread per
// session, like ZkClient. kManual queues them until DispatchPending() (or the server's DispatchAllPending())
// runs them on the caller's thread, for deterministic simulations; in that mode a callback may
// call the session.
//
// Everything is thread-safe. Time comes from the Clock given to the server (a ManualClock in
// simulations); WaitConnected alone waits in real time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/zk/zk_session.h"
#include "tests/support/manual_clock.h"

namespace pgherald::zk {

enum class DispatchMode { kThread, kManual };

struct FakeZkOptions {
  std::chrono::milliseconds session_timeout{10000};
  double lease_fraction = 0.6;
  DispatchMode dispatch = DispatchMode::kThread;
  // The identity the session authenticated as ("user:base64(sha1(user:password))"), if any.
  std::optional<std::string> digest_id;
  ZkAclPolicy acl = ZkAclPolicy::kOpen;  // the ACL of nodes made by Create and Multi
  // kManual only: an asynchronous read's answer runs on the caller's thread before the call
  // returns instead of waiting for DispatchPending, as a real server answers without the caller's
  // help: for code that sends reads and then waits for their answers on its own thread (the
  // orchestrator's pipelined reads). Watch events still wait for DispatchPending.
  bool answer_inline = false;
};

class FakeZk;

namespace fake_internal {
class EventQueue;
struct ServerState;
}  // namespace fake_internal

class FakeZkServer : public std::enable_shared_from_this<FakeZkServer> {
 public:
  // `clock` must outlive the server and its sessions. The tree starts with "/" and "/zookeeper".
  static std::shared_ptr<FakeZkServer> Create(const Clock* clock = &SystemClock::Instance());
  ~FakeZkServer();
  FakeZkServer(const FakeZkServer&) = delete;
  FakeZkServer& operator=(const FakeZkServer&) = delete;

  // A new session, already connected. Session ids are assigned in order, deterministically.
  std::unique_ptr<FakeZk> NewSession(const FakeZkOptions& options = {});

  // The server expires the session (see the top of this file). kNotFound if it is not alive.
  Status ExpireSession(int64_t session_id);
  // Expires every disconnected session whose timeout has passed on the clock. The server also
  // does this whenever it is touched; call it after advancing a ManualClock to make it happen now.
  void ExpireOverdueSessions();

  // Manual dispatch: runs every session's queued callbacks, repeatedly, until none is left
  // (callbacks may cause more events). Returns how many ran.
  size_t DispatchAllPending();

  // Introspection, bypassing sessions (never fails on a fault, never arms a watch).
  std::optional<NodeData> Peek(const std::string& path) const;
  std::vector<std::string> PeekChildren(const std::string& path) const;
  // Sessions the server still holds (not closed, not expired), in creation order.
  std::vector<int64_t> LiveSessions() const;
  int64_t last_zxid() const;
  const Clock& clock() const { return *clock_; }

 private:
  friend class FakeZk;
  explicit FakeZkServer(const Clock* clock);

  const Clock* clock_;
  std::unique_ptr<fake_internal::ServerState> state_;
};

class FakeZk final : public ZkSession {
 public:
  ~FakeZk() override;  // Close()
  FakeZk(const FakeZk&) = delete;
  FakeZk& operator=(const FakeZk&) = delete;

  SessionState state() const override;
  int64_t session_id() const override { return id_; }
  std::chrono::milliseconds session_timeout() const override { return options_.session_timeout; }
  std::chrono::milliseconds lease_remaining() const override;
  Status WaitConnected(std::chrono::milliseconds timeout) override;

  StatusOr<std::string> Create(const std::string& path, const std::string& data,
                               CreateMode mode) override;
  StatusOr<NodeData> Get(const std::string& path, Watcher watch = nullptr) override;
  StatusOr<std::optional<Stat>> Exists(const std::string& path, Watcher watch = nullptr) override;
  StatusOr<std::vector<std::string>> GetChildren(const std::string& path,
                                                 Watcher watch = nullptr) override;
  StatusOr<Stat> Set(const std::string& path, const std::string& data,
                     int32_t version = -1) override;
  Status Delete(const std::string& path, int32_t version = -1) override;
  StatusOr<MultiResult> Multi(const std::vector<Op>& ops, int* failed_op = nullptr) override;
  Status GetAsync(const std::string& path, Watcher watch, GetDone done,
                  WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status ExistsAsync(const std::string& path, Watcher watch, ExistsDone done,
                     WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status GetChildrenAsync(const std::string& path, Watcher watch, ChildrenDone done,
                          WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status MultiAsync(const std::vector<Op>& ops, MultiDone done) override;
  StatusOr<std::string> CreateWithAcl(const std::string& path, const std::string& data,
                                      CreateMode mode, const Acl& acl) override;
  StatusOr<AclData> GetAcl(const std::string& path) override;
  Status SetAcl(const std::string& path, const Acl& acl) override;
  void SetStateListener(StateListener listener) override;
  void Close() override;

  // Fault injection (see the top of this file).
  void Disconnect();
  void Reconnect();
  void FailNextCall(StatusCode code, bool applied = false);

  // Manual dispatch: runs the queued callbacks on the caller's thread; returns how many ran.
  // In kThread mode it returns 0.
  size_t DispatchPending();

  FakeZkServer& server() const { return *server_; }

 private:
  friend class FakeZkServer;
  FakeZk(std::shared_ptr<FakeZkServer> server, int64_t id, const FakeZkOptions& options,
         std::shared_ptr<fake_internal::EventQueue> queue);
  StatusOr<MultiResult> MultiLocked(const std::vector<Op>& ops, int* failed_op);

  const std::shared_ptr<FakeZkServer> server_;
  const int64_t id_;
  const FakeZkOptions options_;
  const std::shared_ptr<fake_internal::EventQueue> queue_;
};

// Sessions on `server` whose watch events wait for DispatchAllPending (manual dispatch): the
// factory the orchestrator's loop tests give it.
inline SessionFactory ManualDispatchSessions(std::shared_ptr<FakeZkServer> server,
                                             std::chrono::milliseconds session_timeout) {
  return [server, session_timeout]() -> StatusOr<std::unique_ptr<ZkSession>> {
    FakeZkOptions options;
    options.dispatch = DispatchMode::kManual;
    options.answer_inline = true;
    options.session_timeout = session_timeout;
    return std::unique_ptr<ZkSession>(server->NewSession(options));
  };
}

}  // namespace pgherald::zk
