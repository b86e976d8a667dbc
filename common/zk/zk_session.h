// ZkSession: the one interface through which pgherald talks to ZooKeeper.
//
// Two implementations: ZkClient (zk_client.h, the only product code that includes
// <zookeeper/zookeeper.h>) and, for tests only, FakeZk (tests/support/fake_zk.h, in memory, with
// fault injection; never installed). tests/zk_contract/ holds the contract suite run against both (by
// tests/unit/fake_zk_test.cc and tests/integration/zk_contract_real_test.cc).
//
// One ZkSession object is one ZooKeeper session. When the session expires the object is dead for
// good (every call returns kSessionExpired); the owner builds a new one. Everything here is C++17.
//
// Threads: calls are synchronous (except the *Async reads) and may be made from any thread except a
// watcher/listener callback's own (a callback must not block on ZooKeeper; hand the work to your
// own thread).
// Watchers and state listeners run on the session's single dispatch thread, never on the C
// library's thread, one at a time, in the order the events arrived.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace pgherald::zk {

// A subset of ZooKeeper's Stat.
struct Stat {
  int64_t czxid = 0;
  int64_t mzxid = 0;  // clients order master states by this
  int64_t pzxid = 0;
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int32_t version = 0;
  int32_t cversion = 0;
  int64_t ephemeral_owner = 0;  // session id, 0 for persistent nodes
  int32_t data_length = 0;
  int32_t num_children = 0;
};

enum class SessionState {
  kConnecting,  // not (yet, or no longer) connected; the session may still live on the server
  kConnected,
  kExpired,     // final: the server dropped the session and its ephemerals
  kAuthFailed,  // final
  kClosed,      // final: Close() was called
};
const char* SessionStateName(SessionState state);
// kExpired, kAuthFailed or kClosed: the session is dead for good; its owner builds a new one.
bool IsFinal(SessionState state);
// What a call made in `state` fails with: Ok when kConnected; kConnectionLoss (kConnecting),
// kSessionExpired, kPermissionDenied (kAuthFailed) or kUnavailable (kClosed).
Status StateError(SessionState state);

enum class EventType { kCreated, kDeleted, kDataChanged, kChildrenChanged, kNotWatching };
const char* EventTypeName(EventType type);

struct WatchEvent {
  EventType type;
  std::string path;
  int64_t session_id;  // the session that armed the watch, so stale events can be dropped
};

// A one-shot watch: fires at most once. Re-arm it by making the call again.
// When the session expires or closes, pending watches are dropped without firing.
using Watcher = std::function<void(const WatchEvent&)>;
using StateListener = std::function<void(SessionState, int64_t session_id)>;

enum class CreateMode { kPersistent, kEphemeral, kPersistentSequential, kEphemeralSequential };

// ZooKeeper's permission bits, as the server defines them.
enum Perm : int32_t {
  kPermRead = 1,
  kPermWrite = 2,
  kPermCreate = 4,
  kPermDelete = 8,
  kPermAdmin = 16,
  kPermAll = 31,
};

// One ACL entry: `perms` granted to `id` under `scheme`. Schemes pgherald uses: "world" (id
// "anyone": every client, authenticated or not), "digest" (id "user:base64(sha1(user:password))",
// a client that authenticated as that user) and, only when creating, "auth" (id "": whatever
// identities the creating session authenticated with; the server stores them expanded).
struct AclEntry {
  int32_t perms = 0;
  std::string scheme;
  std::string id;
  bool operator==(const AclEntry& o) const {
    return perms == o.perms && scheme == o.scheme && id == o.id;
  }
  bool operator!=(const AclEntry& o) const { return !(*this == o); }
};
using Acl = std::vector<AclEntry>;

// The ACL of the nodes a session creates with Create() and Multi creates.
enum class ZkAclPolicy {
  kOpen,                 // world: all (ZOO_OPEN_ACL_UNSAFE)
  kCreatorAllWorldRead,  // the creator's identity: all; world: read. Needs auth.
};

struct AclData {
  Acl acl;
  Stat stat;  // stat.aversion is not kept; SetAcl is unconditional (version -1) in pgherald
};

struct NodeData {
  std::string data;
  Stat stat;
};

// One operation of an atomic Multi.
struct Op {
  enum class Kind { kCheck, kCreate, kSet, kDelete };
  Kind kind;
  std::string path;
  std::string data;      // kCreate, kSet
  int32_t version = -1;  // kCheck, kSet, kDelete; -1 matches any version
  CreateMode mode = CreateMode::kPersistent;  // kCreate

  static Op Check(std::string path, int32_t version) {
    return Op{Kind::kCheck, std::move(path), {}, version, CreateMode::kPersistent};
  }
  static Op Create(std::string path, std::string data, CreateMode mode = CreateMode::kPersistent) {
    return Op{Kind::kCreate, std::move(path), std::move(data), -1, mode};
  }
  static Op Set(std::string path, std::string data, int32_t version = -1) {
    return Op{Kind::kSet, std::move(path), std::move(data), version, CreateMode::kPersistent};
  }
  static Op Delete(std::string path, int32_t version = -1) {
    return Op{Kind::kDelete, std::move(path), {}, version, CreateMode::kPersistent};
  }
};

struct OpResult {
  std::string created_path;  // kCreate: the path made (with its sequence suffix)
  Stat stat;                 // kSet: the new stat
};

struct MultiResult {
  // On success, one result per op. On failure, Multi's Status tells why and failed_op names the
  // first op that failed (-1 when the failure was not an op's, e.g. connection loss).
  std::vector<OpResult> results;
};

class ZkSession {
 public:
  virtual ~ZkSession() = default;

  virtual SessionState state() const = 0;
  // The server-assigned session id, 0 before the first connection.
  virtual int64_t session_id() const = 0;
  // The negotiated session timeout.
  virtual std::chrono::milliseconds session_timeout() const = 0;

  // Time left on the local lease. The lease runs from the send time of the last request the
  // server answered (measured on the monotonic clock) for lease_fraction x session timeout. While
  // it is positive the server cannot yet have expired the session, so ephemerals created by it
  // still exist. Zero when the state is final. A partitioned C client reports kConnecting, not
  // kExpired, until the partition heals: this is how a leader knows to stop acting.
  virtual std::chrono::milliseconds lease_remaining() const = 0;
  bool has_lease() const { return lease_remaining().count() > 0; }

  // Blocks until connected or the timeout passes. kTimeout, or the final state's error.
  virtual Status WaitConnected(std::chrono::milliseconds timeout) = 0;

  // Creates `path`; returns the path created (sequential nodes get their suffix).
  virtual StatusOr<std::string> Create(const std::string& path, const std::string& data,
                                       CreateMode mode) = 0;
  // kNotFound when absent. `watch` fires on data change or deletion.
  virtual StatusOr<NodeData> Get(const std::string& path, Watcher watch = nullptr) = 0;
  // nullopt when absent (and `watch` then fires on creation). Never kNotFound.
  virtual StatusOr<std::optional<Stat>> Exists(const std::string& path,
                                               Watcher watch = nullptr) = 0;
  // Children names (not full paths), sorted. `watch` fires on a child change or deletion.
  virtual StatusOr<std::vector<std::string>> GetChildren(const std::string& path,
                                                         Watcher watch = nullptr) = 0;
  // Compare-and-set when version >= 0: kBadVersion if the node's version differs.
  virtual StatusOr<Stat> Set(const std::string& path, const std::string& data,
                             int32_t version = -1) = 0;
  virtual Status Delete(const std::string& path, int32_t version = -1) = 0;
  // All or nothing. On a failed op nothing is applied and `failed_op` (if given) is set.
  virtual StatusOr<MultiResult> Multi(const std::vector<Op>& ops, int* failed_op = nullptr) = 0;

  // ACLs. Only zk-init and the start-up check use them; the default implementations (for test
  // doubles) answer kFailedPrecondition. Errors as for the data calls; kPermissionDenied (NoAuth)
  // when the session's identity lacks the permission (READ for GetAcl, ADMIN for SetAcl, CREATE on
  // the parent for CreateWithAcl). Create with an explicit ACL instead of the session's policy.
  virtual StatusOr<std::string> CreateWithAcl(const std::string& path, const std::string& data,
                                              CreateMode mode, const Acl& acl);
  virtual StatusOr<AclData> GetAcl(const std::string& path);
  virtual Status SetAcl(const std::string& path, const Acl& acl);

  // Asynchronous reads, for code that must not block (libpgherald's MasterWatch reads from its
  // watchers this way). They may be called from any thread, watcher, listener and `done`
  // callbacks included. If the request is not sent they return the error and `done` never runs:
  // kConnectionLoss while not connected, the final state's error, kUnavailable after Close.
  // Otherwise they return Ok and `done` runs exactly once, on the session's completion thread
  // (ZkClient: the C library's, NOT the dispatch thread), with the answer or an error
  // (kConnectionLoss when the connection drops; kUnavailable for the requests still pending at
  // Close(), which runs them on the thread calling Close before it returns: never call Close
  // holding a lock that `done` takes). `done` must be quick, must not make a synchronous call on
  // this session and must not Close it; it may make asynchronous calls. Requests of one session
  // are answered in the order they were sent. `watch` is armed as by the synchronous call (Get and
  // GetChildren: on success only; Exists: also on an absent node) and runs on the dispatch thread,
  // or, with WatchDelivery::kCompletionThread, on the completion thread like `done`, under the
  // same rules, in the order of answers and events (one thread hop less: for fan-out). An answer
  // moves the lease like any other. The defaults (for test doubles that are never read this way)
  // answer kFailedPrecondition without running `done`.
  enum class WatchDelivery { kDispatchThread, kCompletionThread };
  using GetDone = std::function<void(StatusOr<NodeData>)>;
  using ExistsDone = std::function<void(StatusOr<std::optional<Stat>>)>;
  using ChildrenDone = std::function<void(StatusOr<std::vector<std::string>>)>;
  virtual Status GetAsync(const std::string& path, Watcher watch, GetDone done,
                          WatchDelivery delivery = WatchDelivery::kDispatchThread);
  virtual Status ExistsAsync(const std::string& path, Watcher watch, ExistsDone done,
                             WatchDelivery delivery = WatchDelivery::kDispatchThread);
  virtual Status GetChildrenAsync(const std::string& path, Watcher watch, ChildrenDone done,
                                  WatchDelivery delivery = WatchDelivery::kDispatchThread);
  // The asynchronous Multi, for writers that send many (the orchestrator's re-affirmations of a
  // batch): all or nothing as Multi; `done` gets the result and, on a failed op, its index (-1
  // otherwise: the failure was not an op's, e.g. connection loss). The same rules as the
  // asynchronous reads: not sent -> the error returned and `done` never runs; otherwise `done`
  // runs exactly once on the completion thread, in the order the requests were sent. The default
  // (for test doubles that never write this way) answers kFailedPrecondition.
  using MultiDone = std::function<void(StatusOr<MultiResult> result, int failed_op)>;
  virtual Status MultiAsync(const std::vector<Op>& ops, MultiDone done);

  // Called on every state change (on the dispatch thread). Replaces any earlier listener.
  virtual void SetStateListener(StateListener listener) = 0;

  // Ends the session now (its ephemerals go at once). Idempotent. Must not be called from a
  // watcher or listener callback.
  virtual void Close() = 0;
};

// Makes a new session (one per call). Owners call it again after an expiry.
using SessionFactory = std::function<StatusOr<std::unique_ptr<ZkSession>>()>;

// Creates every missing persistent ancestor of `path` and `path` itself (empty data).
// kAlreadyExists is not an error here, nor is a NoAuth (kPermissionDenied) create of a node that
// exists: ZooKeeper checks CREATE on the parent before it looks for the node, so a role without
// CREATE on an ancestor laid out by `pgherald zk-init` still gets Ok.
Status EnsurePath(ZkSession& zk, const std::string& path);

// "/a/b" + "c" -> "/a/b/c". Parent of "/a/b" is "/a"; of "/a" is "/".
std::string JoinPath(const std::string& parent, const std::string& child);
std::string ParentPath(const std::string& path);

}  // namespace pgherald::zk
