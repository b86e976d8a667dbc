#include "tests/support/fake_zk.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

namespace pgherald::zk {
namespace fake_internal {

// One session's callbacks, in arrival order. The server produces, the session's dispatch thread
// (or DispatchPending's caller) consumes. Never holds its lock while running a callback.
class EventQueue : public std::enable_shared_from_this<EventQueue> {
 public:
  explicit EventQueue(DispatchMode mode) : mode_(mode) {}

  void Start() {
    if (mode_ != DispatchMode::kThread) return;
    // The thread owns a reference so that a Stop() from the thread itself can detach safely.
    thread_ = std::thread([self = shared_from_this()] { self->Loop(); });
  }

  void PushWatch(Watcher watcher, WatchEvent event) {
    Push(Item{std::move(watcher), std::move(event), false, SessionState::kConnecting, 0, nullptr});
  }
  void PushState(SessionState state, int64_t session_id) {
    Push(Item{nullptr, WatchEvent{EventType::kNotWatching, "", session_id}, true, state,
              session_id, nullptr});
  }
  // The answer of an asynchronous read, in order with the events. False once the queue is shut
  // down (the session is closing): then it is not queued.
  bool PushCompletion(std::function<void(bool cancelled)> completion) {
    return Push(Item{nullptr, WatchEvent{EventType::kNotWatching, "", 0}, false,
                     SessionState::kConnecting, 0, std::move(completion)});
  }
  void SetListener(StateListener listener) {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
  }

  size_t RunPending() {
    if (mode_ != DispatchMode::kManual) return 0;
    size_t ran = 0;
    for (;;) {
      std::unique_lock lock(mu_);
      if (stopped_ || items_.empty()) return ran;
      Item item = std::move(items_.front());
      items_.pop_front();
      StateListener listener = item.is_state ? listener_ : nullptr;
      lock.unlock();
      Run(item, listener);
      ++ran;
    }
  }

  // Drops queued callbacks and refuses new ones; a running callback finishes. The answers still
  // queued are run here, cancelled (the contract: kUnavailable on the thread calling Close).
  void Shutdown() {
    std::vector<std::function<void(bool)>> cancelled;
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      for (Item& item : items_) {
        if (item.completion) cancelled.push_back(std::move(item.completion));
      }
      items_.clear();
    }
    cv_.notify_all();
    for (const auto& completion : cancelled) completion(true);
  }

  // Shutdown(), then waits for a running callback to finish (unless called from it) and ends the
  // thread. Nothing runs after Stop() returns.
  void Stop() {
    Shutdown();
    if (!thread_.joinable()) return;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  struct Item {
    Watcher watcher;
    WatchEvent event;
    bool is_state;
    SessionState state;
    int64_t session_id;
    std::function<void(bool cancelled)> completion;  // an asynchronous read's answer
  };

  bool Push(Item item) {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return false;
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
    return true;
  }

  static void Run(const Item& item, const StateListener& listener) {
    if (item.completion) {
      item.completion(false);
    } else if (item.is_state) {
      if (listener) listener(item.state, item.session_id);
    } else if (item.watcher) {
      item.watcher(item.event);
    }
  }

  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopped_ || !items_.empty(); });
      if (stopped_) return;
      Item item = std::move(items_.front());
      items_.pop_front();
      StateListener listener = item.is_state ? listener_ : nullptr;
      lock.unlock();
      Run(item, listener);
      lock.lock();
    }
  }

  const DispatchMode mode_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
  StateListener listener_;
  bool stopped_ = false;
  std::thread thread_;
};

struct Node {
  Acl acl{AclEntry{kPermAll, "world", "anyone"}};
  std::string data;
  Stat stat;  // data_length and num_children are filled in when read
  std::set<std::string> children;
};
using Tree = std::map<std::string, Node>;

struct Fault {
  StatusCode code;
  bool applied;
};

struct Session {
  FakeZkOptions options;
  std::shared_ptr<EventQueue> queue;
  SessionState state = SessionState::kConnected;  // as the client sees it
  bool alive = true;                               // as the server sees it
  MonoTime disconnected_at{};
  std::deque<std::pair<Watcher, WatchEvent>> held;  // events while disconnected
  std::deque<Fault> faults;
};

struct WatchRegistration {
  int64_t session_id;
  Watcher watcher;
};

// A watch to fire after a change: which table, which path, what happened.
struct Trigger {
  bool child_table;
  std::string path;
  EventType type;
};

struct ServerState {
  mutable std::mutex mu;
  std::condition_variable state_changed;
  Tree tree;
  int64_t zxid = 0;
  int64_t next_session = 1;
  std::map<int64_t, Session> sessions;
  // Per path, the one-shot watches armed on it. Get and Exists share the data table (as in
  // ZooKeeper, an exists watch on a present node is a data watch); GetChildren uses the child one.
  std::map<std::string, std::vector<WatchRegistration>> data_watches;
  std::map<std::string, std::vector<WatchRegistration>> child_watches;
};

}  // namespace fake_internal

namespace {

using fake_internal::EventQueue;
using fake_internal::Node;
using fake_internal::ServerState;
using fake_internal::Session;
using fake_internal::Tree;
using fake_internal::Trigger;

constexpr int64_t kSessionIdBase = int64_t{1} << 56;  // looks like a ZooKeeper session id

Status ValidatePath(const std::string& path) {
  if (path.empty() || path[0] != '/') return InvalidArgument("znode path must start with '/': " + path);
  if (path == "/") return Status::Ok();
  if (path.back() == '/') return InvalidArgument("znode path must not end with '/': " + path);
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument("invalid znode path: " + path);
    }
    start = end + 1;
  }
  return Status::Ok();
}

std::string ChildName(const std::string& parent, const std::string& path) {
  return path.substr(parent == "/" ? 1 : parent.size() + 1);
}

Stat StatOf(const Node& node) {
  Stat stat = node.stat;
  stat.data_length = static_cast<int32_t>(node.data.size());
  stat.num_children = static_cast<int32_t>(node.children.size());
  return stat;
}

int64_t WallMillis(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             clock.WallNow().time_since_epoch())
      .count();
}

bool IsSequential(CreateMode mode) {
  return mode == CreateMode::kPersistentSequential || mode == CreateMode::kEphemeralSequential;
}
bool IsEphemeral(CreateMode mode) {
  return mode == CreateMode::kEphemeral || mode == CreateMode::kEphemeralSequential;
}

// Who is calling, for ACL checks, and the ACL a create gives its node.
struct Caller {
  std::optional<std::string> digest_id;
  Acl create_acl;
  bool server = false;  // the server itself (expiring ephemerals): every check passes
};

Acl PolicyAcl(ZkAclPolicy policy) {
  if (policy == ZkAclPolicy::kOpen) return Acl{AclEntry{kPermAll, "world", "anyone"}};
  return Acl{AclEntry{kPermAll, "auth", ""}, AclEntry{kPermRead, "world", "anyone"}};
}

Caller CallerOf(const FakeZkOptions& options) {
  return Caller{options.digest_id, PolicyAcl(options.acl), false};
}

bool Allowed(const Acl& acl, const Caller& caller, int32_t perm) {
  if (caller.server) return true;
  for (const AclEntry& e : acl) {
    if ((e.perms & perm) == 0) continue;
    if (e.scheme == "world" && e.id == "anyone") return true;
    if (e.scheme == "digest" && caller.digest_id && e.id == *caller.digest_id) return true;
  }
  return false;
}

Status NoAuth(const std::string& path, const char* perm) {
  return Status(StatusCode::kPermissionDenied,
                std::string("not authorized (NoAuth): ") + perm + " on " + path);
}

// "auth" entries become the caller's digest id, as the server's fixupACL does.
StatusOr<Acl> ExpandAcl(const Acl& acl, const Caller& caller) {
  Acl out;
  for (const AclEntry& e : acl) {
    if (e.scheme != "auth") {
      out.push_back(e);
      continue;
    }
    if (!caller.digest_id)
      return InvalidArgument("invalid ACL: \"auth\" needs an authenticated session");
    out.push_back(AclEntry{e.perms, "digest", *caller.digest_id});
  }
  if (out.empty()) return InvalidArgument("invalid ACL: empty");
  return out;
}

// Applies one op to `tree` at `zxid`. Checks everything before changing anything, so a failed op
// leaves the tree as it was. Appends the watches to fire on success.
Status ApplyOp(Tree& tree, const Op& op, int64_t session_id, int64_t zxid, int64_t now_ms,
               pgherald::zk::OpResult* result, std::vector<Trigger>* triggers,
               const Caller& caller = Caller{std::nullopt, PolicyAcl(ZkAclPolicy::kOpen), true}) {
  switch (op.kind) {
    case Op::Kind::kCreate: {
      const bool sequential = IsSequential(op.mode);
      if (Status s = ValidatePath(sequential ? op.path + "0" : op.path); !s.ok()) return s;
      if (op.path == "/") return Status(StatusCode::kAlreadyExists, "/ exists");
      std::string parent_path = ParentPath(op.path);
      auto parent = tree.find(parent_path);
      if (parent == tree.end()) return NotFound("parent of " + op.path + " does not exist");
      if (!Allowed(parent->second.acl, caller, kPermCreate)) return NoAuth(parent_path, "CREATE");
      if (parent->second.stat.ephemeral_owner != 0) {
        return FailedPrecondition("ephemeral " + parent_path + " cannot have children");
      }
      auto acl = ExpandAcl(caller.create_acl, caller);
      if (!acl.ok()) return acl.status();
      std::string path = op.path;
      if (sequential) {
        char suffix[16];
        std::snprintf(suffix, sizeof suffix, "%010d", parent->second.stat.cversion);
        path += suffix;
      }
      if (tree.count(path) != 0) return Status(StatusCode::kAlreadyExists, path + " exists");
      Node node;
      node.acl = std::move(*acl);
      node.data = op.data;
      node.stat.czxid = node.stat.mzxid = node.stat.pzxid = zxid;
      node.stat.ctime_ms = node.stat.mtime_ms = now_ms;
      node.stat.ephemeral_owner = IsEphemeral(op.mode) ? session_id : 0;
      parent->second.children.insert(ChildName(parent_path, path));
      parent->second.stat.cversion++;
      parent->second.stat.pzxid = zxid;
      tree.emplace(path, std::move(node));
      triggers->push_back({false, path, EventType::kCreated});
      triggers->push_back({true, parent_path, EventType::kChildrenChanged});
      if (result != nullptr) result->created_path = path;
      return Status::Ok();
    }
    case Op::Kind::kDelete: {
      if (Status s = ValidatePath(op.path); !s.ok()) return s;
      if (op.path == "/") return InvalidArgument("cannot delete /");
      auto it = tree.find(op.path);
      if (it == tree.end()) return NotFound(op.path + " does not exist");
      if (op.version >= 0 && it->second.stat.version != op.version) {
        return Status(StatusCode::kBadVersion, op.path + " is not at version " +
                                                   std::to_string(op.version));
      }
      std::string parent_path = ParentPath(op.path);
      Node& parent = tree.at(parent_path);
      if (!Allowed(parent.acl, caller, kPermDelete)) return NoAuth(parent_path, "DELETE");
      if (!it->second.children.empty()) {
        return Status(StatusCode::kNotEmpty, op.path + " has children");
      }
      parent.children.erase(ChildName(parent_path, op.path));
      parent.stat.cversion++;
      parent.stat.pzxid = zxid;
      tree.erase(it);
      triggers->push_back({false, op.path, EventType::kDeleted});
      triggers->push_back({true, op.path, EventType::kDeleted});
      triggers->push_back({true, parent_path, EventType::kChildrenChanged});
      return Status::Ok();
    }
    case Op::Kind::kSet: {
      if (Status s = ValidatePath(op.path); !s.ok()) return s;
      auto it = tree.find(op.path);
      if (it == tree.end()) return NotFound(op.path + " does not exist");
      if (!Allowed(it->second.acl, caller, kPermWrite)) return NoAuth(op.path, "WRITE");
      if (op.version >= 0 && it->second.stat.version != op.version) {
        return Status(StatusCode::kBadVersion, op.path + " is not at version " +
                                                   std::to_string(op.version));
      }
      it->second.data = op.data;
      it->second.stat.version++;
      it->second.stat.mzxid = zxid;
      it->second.stat.mtime_ms = now_ms;
      triggers->push_back({false, op.path, EventType::kDataChanged});
      if (result != nullptr) result->stat = StatOf(it->second);
      return Status::Ok();
    }
    case Op::Kind::kCheck: {
      if (Status s = ValidatePath(op.path); !s.ok()) return s;
      auto it = tree.find(op.path);
      if (it == tree.end()) return NotFound(op.path + " does not exist");
      if (op.version >= 0 && it->second.stat.version != op.version) {
        return Status(StatusCode::kBadVersion, op.path + " is not at version " +
                                                   std::to_string(op.version));
      }
      return Status::Ok();
    }
  }
  return Internal("unknown op kind");
}

// Fires (and disarms) the watches named by `triggers`. Events for a disconnected session are held
// until it reconnects; a dead session's watches were removed when it died.
void FireLocked(ServerState& s, const std::vector<Trigger>& triggers) {
  for (const Trigger& trigger : triggers) {
    auto& table = trigger.child_table ? s.child_watches : s.data_watches;
    auto it = table.find(trigger.path);
    if (it == table.end()) continue;
    std::vector<fake_internal::WatchRegistration> registrations = std::move(it->second);
    table.erase(it);
    for (auto& registration : registrations) {
      auto session = s.sessions.find(registration.session_id);
      if (session == s.sessions.end() || !session->second.alive) continue;
      WatchEvent event{trigger.type, trigger.path, registration.session_id};
      if (session->second.state == SessionState::kConnected) {
        session->second.queue->PushWatch(std::move(registration.watcher), std::move(event));
      } else {
        session->second.held.emplace_back(std::move(registration.watcher), std::move(event));
      }
    }
  }
}

void DropWatchesLocked(ServerState& s, int64_t session_id) {
  for (auto* table : {&s.data_watches, &s.child_watches}) {
    for (auto it = table->begin(); it != table->end();) {
      auto& list = it->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const auto& r) { return r.session_id == session_id; }),
                 list.end());
      it = list.empty() ? table->erase(it) : std::next(it);
    }
  }
}

// The server ends the session: watches dropped, ephemerals deleted in one transaction (others'
// watches fire). `closing`: the client asked (Close); otherwise the server expired it.
void EndSessionLocked(ServerState& s, const Clock& clock, int64_t session_id, bool closing) {
  Session& session = s.sessions.at(session_id);
  if (session.alive) {
    session.alive = false;
    session.held.clear();
    DropWatchesLocked(s, session_id);
    std::vector<std::string> ephemerals;
    for (const auto& [path, node] : s.tree) {
      if (node.stat.ephemeral_owner == session_id) ephemerals.push_back(path);
    }
    if (!ephemerals.empty()) {
      const int64_t zxid = ++s.zxid;
      std::vector<Trigger> triggers;
      for (const std::string& path : ephemerals) {
        (void)ApplyOp(s.tree, Op::Delete(path), session_id, zxid, WallMillis(clock), nullptr,
                      &triggers);
      }
      FireLocked(s, triggers);
    }
  }
  if (closing) {
    if (session.state == SessionState::kConnected || session.state == SessionState::kConnecting) {
      session.state = SessionState::kClosed;
    }
  } else if (session.state == SessionState::kConnected) {
    session.state = SessionState::kExpired;
    session.queue->PushState(SessionState::kExpired, session_id);
  }
  s.state_changed.notify_all();
}

void ExpireOverdueLocked(ServerState& s, const Clock& clock) {
  const MonoTime now = clock.Now();
  for (auto& [id, session] : s.sessions) {
    if (session.alive && session.state == SessionState::kConnecting &&
        now >= session.disconnected_at + session.options.session_timeout) {
      EndSessionLocked(s, clock, id, /*closing=*/false);
    }
  }
}

// Runs one data call for `session_id` under the server lock: refuses it when the session cannot
// make calls, and applies an injected fault (with applied=true the body runs first).
template <typename R, typename Body>
R CallLocked(Session& session, Body& body) {
  if (Status st = StateError(session.state); !st.ok()) return st;
  if (!session.faults.empty()) {
    fake_internal::Fault fault = session.faults.front();
    session.faults.pop_front();
    if (fault.applied) (void)body();
    return Status(fault.code, std::string("injected fault: ") + StatusCodeName(fault.code));
  }
  return body();
}

template <typename R, typename Body>
R RunCall(ServerState& s, const Clock& clock, int64_t session_id, Body body) {
  std::lock_guard lock(s.mu);
  ExpireOverdueLocked(s, clock);
  return CallLocked<R>(s.sessions.at(session_id), body);
}

bool AnswerInline(const FakeZkOptions& options) {
  return options.answer_inline && options.dispatch == DispatchMode::kManual;
}

// The asynchronous form of RunCall: not sent (the error returned, `done` never runs) unless the
// session is connected; otherwise the call runs now and its answer is queued, under the server
// lock, so it comes before any event the call's watch may fire later (answers and events in
// order, as ZooKeeper serves them), or, with `answer_inline`, runs on the caller once the lock is
// released (any event comes later: it waits for DispatchPending). An injected fault is the answer.

template <typename R, typename Body>
Status RunAsyncCall(ServerState& s, const Clock& clock, int64_t session_id, Body body,
                    std::function<void(R)> done, bool answer_inline = false) {
  std::unique_lock lock(s.mu);
  ExpireOverdueLocked(s, clock);
  Session& session = s.sessions.at(session_id);
  if (Status st = StateError(session.state); !st.ok()) return st;
  auto answer = std::make_shared<R>(CallLocked<R>(session, body));
  if (answer_inline) {
    lock.unlock();
    done(std::move(*answer));
    return Status::Ok();
  }
  const bool queued = session.queue->PushCompletion(
      [answer, callback = std::move(done)](bool cancelled) {
        if (cancelled) {
          callback(R(Unavailable("ZooKeeper session closed")));
        } else {
          callback(std::move(*answer));
        }
      });
  if (!queued) return Unavailable("ZooKeeper session closed");
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// FakeZkServer

FakeZkServer::FakeZkServer(const Clock* clock)
    : clock_(clock), state_(std::make_unique<fake_internal::ServerState>()) {
  state_->tree["/"];
  state_->tree["/"].children.insert("zookeeper");
  state_->tree["/zookeeper"];
}

FakeZkServer::~FakeZkServer() = default;

std::shared_ptr<FakeZkServer> FakeZkServer::Create(const Clock* clock) {
  return std::shared_ptr<FakeZkServer>(new FakeZkServer(clock));
}

std::unique_ptr<FakeZk> FakeZkServer::NewSession(const FakeZkOptions& options) {
  auto queue = std::make_shared<EventQueue>(options.dispatch);
  queue->Start();
  int64_t id;
  {
    std::lock_guard lock(state_->mu);
    ExpireOverdueLocked(*state_, *clock_);
    id = kSessionIdBase + state_->next_session++;
    Session session;
    session.options = options;
    session.queue = queue;
    state_->sessions.emplace(id, std::move(session));
  }
  return std::unique_ptr<FakeZk>(new FakeZk(shared_from_this(), id, options, std::move(queue)));
}

Status FakeZkServer::ExpireSession(int64_t session_id) {
  std::lock_guard lock(state_->mu);
  ExpireOverdueLocked(*state_, *clock_);
  auto it = state_->sessions.find(session_id);
  if (it == state_->sessions.end() || !it->second.alive) {
    return NotFound("no live session " + std::to_string(session_id));
  }
  EndSessionLocked(*state_, *clock_, session_id, /*closing=*/false);
  return Status::Ok();
}

void FakeZkServer::ExpireOverdueSessions() {
  std::lock_guard lock(state_->mu);
  ExpireOverdueLocked(*state_, *clock_);
}

size_t FakeZkServer::DispatchAllPending() {
  size_t total = 0;
  for (;;) {
    std::vector<std::shared_ptr<EventQueue>> queues;
    {
      std::lock_guard lock(state_->mu);
      for (const auto& [id, session] : state_->sessions) queues.push_back(session.queue);
    }
    size_t ran = 0;
    for (const auto& queue : queues) ran += queue->RunPending();
    if (ran == 0) return total;
    total += ran;
  }
}

std::optional<NodeData> FakeZkServer::Peek(const std::string& path) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->tree.find(path);
  if (it == state_->tree.end()) return std::nullopt;
  return NodeData{it->second.data, StatOf(it->second)};
}

std::vector<std::string> FakeZkServer::PeekChildren(const std::string& path) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->tree.find(path);
  if (it == state_->tree.end()) return {};
  return {it->second.children.begin(), it->second.children.end()};
}

std::vector<int64_t> FakeZkServer::LiveSessions() const {
  std::lock_guard lock(state_->mu);
  std::vector<int64_t> ids;
  for (const auto& [id, session] : state_->sessions) {
    if (session.alive) ids.push_back(id);
  }
  return ids;
}

int64_t FakeZkServer::last_zxid() const {
  std::lock_guard lock(state_->mu);
  return state_->zxid;
}

// ---------------------------------------------------------------------------------------------
// FakeZk

FakeZk::FakeZk(std::shared_ptr<FakeZkServer> server, int64_t id, const FakeZkOptions& options,
               std::shared_ptr<fake_internal::EventQueue> queue)
    : server_(std::move(server)), id_(id), options_(options), queue_(std::move(queue)) {}

FakeZk::~FakeZk() {
  Close();
  std::lock_guard lock(server_->state_->mu);
  server_->state_->sessions.erase(id_);
}

SessionState FakeZk::state() const {
  std::lock_guard lock(server_->state_->mu);
  ExpireOverdueLocked(*server_->state_, *server_->clock_);
  return server_->state_->sessions.at(id_).state;
}

std::chrono::milliseconds FakeZk::lease_remaining() const {
  std::lock_guard lock(server_->state_->mu);
  ExpireOverdueLocked(*server_->state_, *server_->clock_);
  const Session& session = server_->state_->sessions.at(id_);
  const auto lease = std::chrono::duration_cast<std::chrono::milliseconds>(
      options_.session_timeout * options_.lease_fraction);
  switch (session.state) {
    case SessionState::kConnected: return lease;
    case SessionState::kConnecting: {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          session.disconnected_at + lease - server_->clock_->Now());
      return std::max(left, std::chrono::milliseconds(0));
    }
    default: return std::chrono::milliseconds(0);
  }
}

Status FakeZk::WaitConnected(std::chrono::milliseconds timeout) {
  auto& s = *server_->state_;
  std::unique_lock lock(s.mu);
  s.state_changed.wait_for(lock, timeout,
                           [&] { return s.sessions.at(id_).state != SessionState::kConnecting; });
  SessionState state = s.sessions.at(id_).state;
  if (state == SessionState::kConnecting) {
    return Status(StatusCode::kTimeout, "not connected to ZooKeeper within " +
                                            std::to_string(timeout.count()) + " ms");
  }
  return StateError(state);
}

StatusOr<std::string> FakeZk::Create(const std::string& path, const std::string& data,
                                     CreateMode mode) {
  // The session's policy ACL: the same caller CallerOf(options_) describes.
  return CreateWithAcl(path, data, mode, PolicyAcl(options_.acl));
}

namespace {

// The reads, server lock held: what Get, Exists and GetChildren (and their asynchronous forms)
// answer, arming `watch` as ZooKeeper does.
StatusOr<NodeData> ReadLocked(ServerState& s, const Caller& caller, int64_t session_id,
                              const std::string& path, Watcher watch) {
  if (Status st = ValidatePath(path); !st.ok()) return st;
  auto it = s.tree.find(path);
  if (it == s.tree.end()) return NotFound(path + " does not exist");
  if (!Allowed(it->second.acl, caller, kPermRead)) return NoAuth(path, "READ");
  if (watch) s.data_watches[path].push_back({session_id, std::move(watch)});
  return NodeData{it->second.data, StatOf(it->second)};
}

StatusOr<std::optional<Stat>> ExistsLocked(ServerState& s, int64_t session_id,
                                           const std::string& path, Watcher watch) {
  if (Status st = ValidatePath(path); !st.ok()) return st;
  if (watch) s.data_watches[path].push_back({session_id, std::move(watch)});
  auto it = s.tree.find(path);
  if (it == s.tree.end()) return std::optional<Stat>();
  return std::optional<Stat>(StatOf(it->second));
}

StatusOr<std::vector<std::string>> ChildrenLocked(ServerState& s, const Caller& caller,
                                                  int64_t session_id, const std::string& path,
                                                  Watcher watch) {
  if (Status st = ValidatePath(path); !st.ok()) return st;
  auto it = s.tree.find(path);
  if (it == s.tree.end()) return NotFound(path + " does not exist");
  if (!Allowed(it->second.acl, caller, kPermRead)) return NoAuth(path, "READ");
  if (watch) s.child_watches[path].push_back({session_id, std::move(watch)});
  return std::vector<std::string>(it->second.children.begin(), it->second.children.end());
}

}  // namespace

StatusOr<NodeData> FakeZk::Get(const std::string& path, Watcher watch) {
  auto& s = *server_->state_;
  return RunCall<StatusOr<NodeData>>(s, *server_->clock_, id_, [&]() {
    return ReadLocked(s, CallerOf(options_), id_, path, std::move(watch));
  });
}

StatusOr<std::optional<Stat>> FakeZk::Exists(const std::string& path, Watcher watch) {
  auto& s = *server_->state_;
  return RunCall<StatusOr<std::optional<Stat>>>(
      s, *server_->clock_, id_, [&]() { return ExistsLocked(s, id_, path, std::move(watch)); });
}

StatusOr<std::vector<std::string>> FakeZk::GetChildren(const std::string& path, Watcher watch) {
  auto& s = *server_->state_;
  return RunCall<StatusOr<std::vector<std::string>>>(s, *server_->clock_, id_, [&]() {
    return ChildrenLocked(s, CallerOf(options_), id_, path, std::move(watch));
  });
}

// Watches and answers share the session's one dispatch thread, so `delivery` changes nothing.
Status FakeZk::GetAsync(const std::string& path, Watcher watch, GetDone done, WatchDelivery) {
  auto& s = *server_->state_;
  return RunAsyncCall<StatusOr<NodeData>>(
      s, *server_->clock_, id_,
      [&]() { return ReadLocked(s, CallerOf(options_), id_, path, std::move(watch)); },
      std::move(done), AnswerInline(options_));
}

Status FakeZk::ExistsAsync(const std::string& path, Watcher watch, ExistsDone done,
                           WatchDelivery) {
  auto& s = *server_->state_;
  return RunAsyncCall<StatusOr<std::optional<Stat>>>(
      s, *server_->clock_, id_, [&]() { return ExistsLocked(s, id_, path, std::move(watch)); },
      std::move(done), AnswerInline(options_));
}

Status FakeZk::GetChildrenAsync(const std::string& path, Watcher watch, ChildrenDone done,
                                WatchDelivery) {
  auto& s = *server_->state_;
  return RunAsyncCall<StatusOr<std::vector<std::string>>>(
      s, *server_->clock_, id_,
      [&]() { return ChildrenLocked(s, CallerOf(options_), id_, path, std::move(watch)); },
      std::move(done), AnswerInline(options_));
}

StatusOr<Stat> FakeZk::Set(const std::string& path, const std::string& data, int32_t version) {
  auto& s = *server_->state_;
  const Clock& clock = *server_->clock_;
  return RunCall<StatusOr<Stat>>(s, clock, id_, [&]() -> StatusOr<Stat> {
    OpResult result;
    std::vector<Trigger> triggers;
    Status st = ApplyOp(s.tree, Op::Set(path, data, version), id_, s.zxid + 1, WallMillis(clock),
                        &result, &triggers, CallerOf(options_));
    if (!st.ok()) return st;
    ++s.zxid;
    FireLocked(s, triggers);
    return result.stat;
  });
}

Status FakeZk::Delete(const std::string& path, int32_t version) {
  auto& s = *server_->state_;
  const Clock& clock = *server_->clock_;
  return RunCall<Status>(s, clock, id_, [&]() -> Status {
    std::vector<Trigger> triggers;
    Status st = ApplyOp(s.tree, Op::Delete(path, version), id_, s.zxid + 1, WallMillis(clock),
                        nullptr, &triggers, CallerOf(options_));
    if (!st.ok()) return st;
    ++s.zxid;
    FireLocked(s, triggers);
    return Status::Ok();
  });
}

StatusOr<MultiResult> FakeZk::Multi(const std::vector<Op>& ops, int* failed_op) {
  if (failed_op != nullptr) *failed_op = -1;
  auto& s = *server_->state_;
  return RunCall<StatusOr<MultiResult>>(s, *server_->clock_, id_,
                                        [&]() { return MultiLocked(ops, failed_op); });
}

Status FakeZk::MultiAsync(const std::vector<Op>& ops, MultiDone done) {
  if (ops.empty()) return InvalidArgument("multi: no ops to send");
  auto& s = *server_->state_;
  auto failed = std::make_shared<int>(-1);
  return RunAsyncCall<StatusOr<MultiResult>>(
      s, *server_->clock_, id_, [&]() { return MultiLocked(ops, failed.get()); },
      std::function<void(StatusOr<MultiResult>)>(
          [failed, done = std::move(done)](StatusOr<MultiResult> result) {
            done(std::move(result), *failed);
          }),
      AnswerInline(options_));
}

// Under the server lock: all ops run on a copy at one zxid (a multi is one transaction); the copy
// replaces the tree only if every op succeeded.
StatusOr<MultiResult> FakeZk::MultiLocked(const std::vector<Op>& ops, int* failed_op) {
  auto& s = *server_->state_;
  const Clock& clock = *server_->clock_;
  Tree staged = s.tree;
  MultiResult multi;
  std::vector<Trigger> triggers;
  const int64_t now_ms = WallMillis(clock);
  for (size_t i = 0; i < ops.size(); ++i) {
    OpResult result;
    Status st =
        ApplyOp(staged, ops[i], id_, s.zxid + 1, now_ms, &result, &triggers, CallerOf(options_));
    if (!st.ok()) {
      if (failed_op != nullptr) *failed_op = static_cast<int>(i);
      return Status(st.code(), "multi op " + std::to_string(i) + ": " + st.message());
    }
    multi.results.push_back(std::move(result));
  }
  s.tree.swap(staged);
  ++s.zxid;
  FireLocked(s, triggers);
  return multi;
}

StatusOr<std::string> FakeZk::CreateWithAcl(const std::string& path, const std::string& data,
                                            CreateMode mode, const Acl& acl) {
  auto& s = *server_->state_;
  const Clock& clock = *server_->clock_;
  return RunCall<StatusOr<std::string>>(s, clock, id_, [&]() -> StatusOr<std::string> {
    OpResult result;
    std::vector<Trigger> triggers;
    Status st = ApplyOp(s.tree, Op::Create(path, data, mode), id_, s.zxid + 1, WallMillis(clock),
                        &result, &triggers, Caller{options_.digest_id, acl, false});
    if (!st.ok()) return st;
    ++s.zxid;
    FireLocked(s, triggers);
    return result.created_path;
  });
}

StatusOr<AclData> FakeZk::GetAcl(const std::string& path) {
  auto& s = *server_->state_;
  return RunCall<StatusOr<AclData>>(s, *server_->clock_, id_, [&]() -> StatusOr<AclData> {
    if (Status st = ValidatePath(path); !st.ok()) return st;
    auto it = s.tree.find(path);
    if (it == s.tree.end()) return NotFound(path + " does not exist");
    AclData out{it->second.acl, StatOf(it->second)};
    // ZooKeeper 3.8 shows digests only to a client with ADMIN; others see "user:x".
    if (!Allowed(it->second.acl, CallerOf(options_), kPermAdmin)) {
      for (AclEntry& e : out.acl) {
        if (e.scheme == "digest") e.id = e.id.substr(0, e.id.find(':')) + ":x";
      }
    }
    return out;
  });
}

Status FakeZk::SetAcl(const std::string& path, const Acl& acl) {
  auto& s = *server_->state_;
  return RunCall<Status>(s, *server_->clock_, id_, [&]() -> Status {
    if (Status st = ValidatePath(path); !st.ok()) return st;
    auto it = s.tree.find(path);
    if (it == s.tree.end()) return NotFound(path + " does not exist");
    if (!Allowed(it->second.acl, CallerOf(options_), kPermAdmin)) return NoAuth(path, "ADMIN");
    Caller caller = CallerOf(options_);
    auto expanded = ExpandAcl(acl, caller);
    if (!expanded.ok()) return expanded.status();
    it->second.acl = std::move(*expanded);
    ++s.zxid;
    return Status::Ok();
  });
}

void FakeZk::SetStateListener(StateListener listener) { queue_->SetListener(std::move(listener)); }

void FakeZk::Close() {
  // Queue first: once the state reads kClosed, no further callback of this session can start.
  queue_->Shutdown();
  {
    std::lock_guard lock(server_->state_->mu);
    Session& session = server_->state_->sessions.at(id_);
    if (session.state != SessionState::kClosed) {
      EndSessionLocked(*server_->state_, *server_->clock_, id_, /*closing=*/true);
    }
  }
  queue_->Stop();
}

void FakeZk::Disconnect() {
  auto& s = *server_->state_;
  std::lock_guard lock(s.mu);
  ExpireOverdueLocked(s, *server_->clock_);
  Session& session = s.sessions.at(id_);
  if (session.state != SessionState::kConnected) return;
  session.state = SessionState::kConnecting;
  session.disconnected_at = server_->clock_->Now();
  session.queue->PushState(SessionState::kConnecting, id_);
  s.state_changed.notify_all();
}

void FakeZk::Reconnect() {
  auto& s = *server_->state_;
  std::lock_guard lock(s.mu);
  ExpireOverdueLocked(s, *server_->clock_);
  Session& session = s.sessions.at(id_);
  if (session.state != SessionState::kConnecting) return;
  if (!session.alive) {
    session.state = SessionState::kExpired;
    session.queue->PushState(SessionState::kExpired, id_);
  } else {
    session.state = SessionState::kConnected;
    session.queue->PushState(SessionState::kConnected, id_);
    for (auto& [watcher, event] : session.held) {
      session.queue->PushWatch(std::move(watcher), std::move(event));
    }
    session.held.clear();
  }
  s.state_changed.notify_all();
}

void FakeZk::FailNextCall(StatusCode code, bool applied) {
  std::lock_guard lock(server_->state_->mu);
  server_->state_->sessions.at(id_).faults.push_back({code, applied});
}

size_t FakeZk::DispatchPending() { return queue_->RunPending(); }

}  // namespace pgherald::zk
