// The only product file that includes <zookeeper/zookeeper.h>. See zk_client.h for the threading and
// lease contracts.
#include "common/zk/zk_client.h"

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <utility>

namespace pgherald::zk {
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Log routing. The C library's log callback gets only the line, no context, so each live client
// gets a slot with its own trampoline function; a line is routed by the trampoline it came in.

constexpr size_t kLogSlots = 128;

struct LogRouting {
  std::mutex mu;
  std::array<std::shared_ptr<const ZkLogSink>, kLogSlots> sinks;
  std::array<bool, kLogSlots> used{};
  std::shared_ptr<const ZkLogSink> default_sink;
  bool level_set = false;
};

LogRouting& Routing() {
  // Leaked on purpose: the library's threads may still log during static destruction.
  static LogRouting* routing = new LogRouting;
  return *routing;
}

ZkLogLevel LevelOf(const char* line) {
  if (std::strstr(line, "ZOO_ERROR@") != nullptr) return ZkLogLevel::kError;
  if (std::strstr(line, "ZOO_WARN@") != nullptr) return ZkLogLevel::kWarn;
  if (std::strstr(line, "ZOO_INFO@") != nullptr) return ZkLogLevel::kInfo;
  if (std::strstr(line, "ZOO_DEBUG@") != nullptr) return ZkLogLevel::kDebug;
  return ZkLogLevel::kWarn;
}

void RouteLog(int slot, const char* line) {
  if (line == nullptr) return;
  std::shared_ptr<const ZkLogSink> sink;
  {
    LogRouting& routing = Routing();
    std::lock_guard lock(routing.mu);
    if (slot >= 0) sink = routing.sinks[static_cast<size_t>(slot)];
    if (sink == nullptr) sink = routing.default_sink;
  }
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (sink != nullptr && *sink) {
    (*sink)(LevelOf(line), text);
  } else {
    std::fprintf(stderr, "zookeeper: %s\n", text.c_str());
  }
}

template <size_t kSlot>
void LogTrampoline(const char* line) {
  RouteLog(static_cast<int>(kSlot), line);
}
void DefaultLogTrampoline(const char* line) { RouteLog(-1, line); }

template <size_t... kSlots>
constexpr std::array<log_callback_fn, sizeof...(kSlots)> MakeTrampolines(
    std::index_sequence<kSlots...>) {
  return {&LogTrampoline<kSlots>...};
}
constexpr auto kTrampolines = MakeTrampolines(std::make_index_sequence<kLogSlots>());

// A slot for `sink`, or -1 (the default sink) when there is no sink or no free slot.
int AcquireLogSlot(const ZkLogSink& sink) {
  if (!sink) return -1;
  LogRouting& routing = Routing();
  std::lock_guard lock(routing.mu);
  for (size_t i = 0; i < kLogSlots; ++i) {
    if (!routing.used[i]) {
      routing.used[i] = true;
      routing.sinks[i] = std::make_shared<const ZkLogSink>(sink);
      return static_cast<int>(i);
    }
  }
  return -1;
}

// Only once the handle is closed: the library logs nothing more for it.
void ReleaseLogSlot(int slot) {
  if (slot < 0) return;
  LogRouting& routing = Routing();
  std::lock_guard lock(routing.mu);
  routing.used[static_cast<size_t>(slot)] = false;
  routing.sinks[static_cast<size_t>(slot)] = nullptr;
}

log_callback_fn TrampolineFor(int slot) {
  return slot < 0 ? &DefaultLogTrampoline : kTrampolines[static_cast<size_t>(slot)];
}

void EnsureLibraryLogLevel() {
  LogRouting& routing = Routing();
  std::lock_guard lock(routing.mu);
  if (routing.level_set) return;
  routing.level_set = true;
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
}

// ---------------------------------------------------------------------------------------------
// Mapping of C values

// True when `rc` came from the server (so the server heard the request): results and API errors,
// but not the client-side failures (connection loss, timeout, closing, invalid state...).
bool AnsweredByServer(int rc) {
  if (rc == ZOK) return true;
  if (rc > ZAPIERROR) return false;  // system errors: connection loss, marshalling, timeout...
  return rc != ZSESSIONEXPIRED && rc != ZCLOSING && rc != ZINVALIDCALLBACK &&
         rc != ZSESSIONMOVED && rc != ZNOTHING && rc != ZAUTHFAILED;
}

StatusCode CodeOf(int rc) {
  switch (rc) {
    case ZOK: return StatusCode::kOk;
    case ZNONODE: return StatusCode::kNotFound;
    case ZNODEEXISTS: return StatusCode::kAlreadyExists;
    case ZBADVERSION: return StatusCode::kBadVersion;
    case ZNOTEMPTY: return StatusCode::kNotEmpty;
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZSESSIONMOVED:  // the request may or may not have been applied
      return StatusCode::kConnectionLoss;
    case ZSESSIONEXPIRED: return StatusCode::kSessionExpired;
    case ZNOAUTH:
    case ZAUTHFAILED:
    case ZSESSIONCLOSEDREQUIRESASLAUTH: return StatusCode::kPermissionDenied;
    case ZBADARGUMENTS:
    case ZINVALIDACL: return StatusCode::kInvalidArgument;
    case ZNOCHILDRENFOREPHEMERALS: return StatusCode::kFailedPrecondition;
    case ZCLOSING:
    case ZTHROTTLEDOP:  // not executed
      return StatusCode::kUnavailable;
    default: return StatusCode::kInternal;
  }
}

Stat ToStat(const ::Stat& s) {
  Stat stat;
  stat.czxid = s.czxid;
  stat.mzxid = s.mzxid;
  stat.pzxid = s.pzxid;
  stat.ctime_ms = s.ctime;
  stat.mtime_ms = s.mtime;
  stat.version = s.version;
  stat.cversion = s.cversion;
  stat.ephemeral_owner = s.ephemeralOwner;
  stat.data_length = s.dataLength;
  stat.num_children = s.numChildren;
  return stat;
}

int ModeOf(CreateMode mode) {
  switch (mode) {
    case CreateMode::kPersistent: return ZOO_PERSISTENT;
    case CreateMode::kEphemeral: return ZOO_EPHEMERAL;
    case CreateMode::kPersistentSequential: return ZOO_PERSISTENT_SEQUENTIAL;
    case CreateMode::kEphemeralSequential: return ZOO_EPHEMERAL_SEQUENTIAL;
  }
  return ZOO_PERSISTENT;
}

EventType EventTypeOf(int type) {
  if (type == ZOO_CREATED_EVENT) return EventType::kCreated;
  if (type == ZOO_DELETED_EVENT) return EventType::kDeleted;
  if (type == ZOO_CHANGED_EVENT) return EventType::kDataChanged;
  if (type == ZOO_CHILD_EVENT) return EventType::kChildrenChanged;
  return EventType::kNotWatching;
}

const ACL_vector* AclFor(ZkAclPolicy policy) {
  if (policy == ZkAclPolicy::kOpen) return &ZOO_OPEN_ACL_UNSAFE;
  // The C library declares its Id constants non-const; the ACL only reads them.
  static ACL creator_all_world_read[] = {{ZOO_PERM_ALL, ZOO_AUTH_IDS},
                                         {ZOO_PERM_READ, ZOO_ANYONE_ID_UNSAFE}};
  static ACL_vector acl = {2, creator_all_world_read};
  return &acl;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Core: shared by the ZkClient, its dispatch thread and the C library's callbacks (which get a
// raw pointer; it stays valid because zookeeper_close, which ends all callbacks, runs before the
// ZkClient lets go of the Core).

struct ZkClient::Core : std::enable_shared_from_this<Core> {
  explicit Core(const ZkClientOptions& o)
      : options(o), clock(o.clock != nullptr ? o.clock : &SystemClock::Instance()) {
    options.log_sink = nullptr;  // held by the log routing, not here
    timeout_ms.store(o.session_timeout.count());
  }

  // One request in flight. Shared by the caller and the completion (through a heap-allocated
  // shared_ptr handed to the C library as the completion's data), so that a caller that gave up
  // waiting leaves the buffers alive for a late completion.
  struct Call {
    Core* core = nullptr;
    MonoTime sent{};
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int rc = ZSYSTEMERROR;
    std::string value;
    ::Stat stat{};
    std::vector<std::string> strings;
    // Multi: the ops and where the C library writes their results.
    std::vector<zoo_op_t> ops;
    std::vector<zoo_op_result_t> results;
    std::vector<std::vector<char>> path_buffers;
    std::vector<::Stat> stats;
    Acl acl;  // GetAcl
    // An asynchronous call's continuation (MultiAsync): runs once on the completion thread, after
    // the call is marked done. It gets the call, never captures it (no cycle).
    std::function<void(const Call&, int rc)> on_done;
  };
  using CallHolder = std::shared_ptr<Call>;

  struct WatchEntry {
    Watcher watcher;
    int64_t session_id;
    bool on_completion_thread = false;  // WatchDelivery::kCompletionThread
  };

  // --- C callbacks: quick hand-offs only ---

  static std::shared_ptr<Call> TakeCall(const void* data) {
    std::unique_ptr<CallHolder> holder(static_cast<CallHolder*>(const_cast<void*>(data)));
    return std::move(*holder);
  }
  static void Finish(const std::shared_ptr<Call>& call, int rc) {
    if (AnsweredByServer(rc)) call->core->RecordAnswer(call->sent);
    {
      std::lock_guard lock(call->mu);
      call->rc = rc;
      call->done = true;
    }
    call->cv.notify_all();
    if (call->on_done) {
      auto on_done = std::move(call->on_done);
      on_done(*call, rc);
    }
  }
  static void VoidCompletion(int rc, const void* data) { Finish(TakeCall(data), rc); }
  static void StatCompletion(int rc, const ::Stat* stat, const void* data) {
    auto call = TakeCall(data);
    if (rc == ZOK && stat != nullptr) call->stat = *stat;
    Finish(call, rc);
  }
  static void DataCompletion(int rc, const char* value, int value_len, const ::Stat* stat,
                             const void* data) {
    auto call = TakeCall(data);
    if (rc == ZOK) {
      if (value != nullptr && value_len > 0) call->value.assign(value, value_len);
      if (stat != nullptr) call->stat = *stat;
    }
    Finish(call, rc);
  }
  static void AclCompletion(int rc, ACL_vector* acl, ::Stat* stat, const void* data) {
    auto call = TakeCall(data);
    if (rc == ZOK) {
      // The C library frees `acl` after this returns: copy it.
      for (int32_t i = 0; acl != nullptr && i < acl->count; ++i) {
        const ACL& a = acl->data[i];
        call->acl.push_back(
            AclEntry{a.perms, a.id.scheme ? a.id.scheme : "", a.id.id ? a.id.id : ""});
      }
      if (stat != nullptr) call->stat = *stat;
    }
    Finish(call, rc);
  }
  static void StringCompletion(int rc, const char* value, const void* data) {
    auto call = TakeCall(data);
    if (rc == ZOK && value != nullptr) call->value = value;
    Finish(call, rc);
  }
  static void StringsCompletion(int rc, const String_vector* strings, const void* data) {
    auto call = TakeCall(data);
    if (rc == ZOK && strings != nullptr) {
      for (int32_t i = 0; i < strings->count; ++i) call->strings.emplace_back(strings->data[i]);
    }
    Finish(call, rc);
  }

  struct PingContext {
    Core* core;
    MonoTime sent;
  };
  static void PingCompletion(int rc, const ::Stat*, const void* data) {
    std::unique_ptr<PingContext> ping(static_cast<PingContext*>(const_cast<void*>(data)));
    if (AnsweredByServer(rc)) ping->core->RecordAnswer(ping->sent);
  }

  // The session watcher given to zookeeper_init: session events only.
  static void SessionWatcher(zhandle_t* zh, int type, int state, const char*, void* context) {
    if (type != ZOO_SESSION_EVENT) return;
    Core* core = static_cast<Core*>(context);
    if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) {
      const clientid_t* id = zoo_client_id(zh);
      core->OnState(SessionState::kConnected, id->client_id,
                    std::string(id->passwd, sizeof id->passwd), zoo_recv_timeout(zh));
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      core->OnState(SessionState::kExpired, 0, {}, 0);
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      core->OnState(SessionState::kAuthFailed, 0, {}, 0);
    } else {
      core->OnState(SessionState::kConnecting, 0, {}, 0);
    }
  }

  // The per-call watcher: `context` is the watch's id in `watches` (never dereferenced, so a
  // late or repeated call of it is harmless).
  static void NodeWatcher(zhandle_t* zh, int type, int, const char* path, void* context) {
    // Session events are also delivered to every per-call watcher; the session watcher has them.
    if (type == ZOO_SESSION_EVENT) return;
    Core* core = static_cast<Core*>(const_cast<void*>(zoo_get_context(zh)));
    core->FireWatch(reinterpret_cast<uintptr_t>(context), EventTypeOf(type),
                    path != nullptr ? path : "");
  }

  void OnState(SessionState next, int64_t id, std::string new_password, int negotiated_ms) {
    {
      std::lock_guard lock(mu);
      const SessionState current = state.load();
      if (IsFinal(current) || current == next) return;
      if (next == SessionState::kConnected) {
        session_id.store(id);
        password = std::move(new_password);
        if (negotiated_ms > 0) timeout_ms.store(negotiated_ms);
        next_ping = std::chrono::steady_clock::now();  // start the lease at once
      }
      if (next == SessionState::kExpired || next == SessionState::kAuthFailed) {
        watches.clear();  // pending watches are dropped with the session
      }
      state.store(next);
      const int64_t sid = session_id.load();
      PushLocked([this, next, sid] {
        StateListener current_listener;
        {
          std::lock_guard inner(mu);
          current_listener = listener;
        }
        if (current_listener) current_listener(next, sid);
      });
    }
    cv.notify_all();
  }

  void FireWatch(uintptr_t watch_id, EventType type, std::string path) {
    Watcher run_here;
    WatchEvent event{type, std::move(path), 0};
    {
      std::lock_guard lock(mu);
      auto it = watches.find(watch_id);
      if (it == watches.end()) return;
      WatchEntry entry = std::move(it->second);
      watches.erase(it);
      event.session_id = entry.session_id;
      if (entry.on_completion_thread) {
        if (stopping) return;
        run_here = std::move(entry.watcher);  // below, on this (the completion) thread
      } else {
        PushLocked([watcher = std::move(entry.watcher), event = std::move(event)] {
          watcher(event);
        });
      }
    }
    if (run_here) {
      run_here(event);
      return;
    }
    cv.notify_all();
  }

  void RecordAnswer(MonoTime sent) {
    const int64_t ticks = sent.time_since_epoch().count();
    int64_t anchor = lease_anchor.load();
    while (ticks > anchor && !lease_anchor.compare_exchange_weak(anchor, ticks)) {
    }
  }

  void PushLocked(std::function<void()> item) {
    if (stopping) return;
    queue.push_back(std::move(item));
  }

  // --- the dispatch thread ---

  void Start() {
    auto self = shared_from_this();  // a Close() from the thread itself may then detach it
    dispatch = std::thread([self] { self->DispatchLoop(); });
    dispatch_id = dispatch.get_id();
  }

  std::chrono::steady_clock::duration PingInterval() const {
    return std::max(milliseconds(timeout_ms.load() / 6), milliseconds(20));
  }

  void DispatchLoop() {
    std::unique_lock lock(mu);
    for (;;) {
      if (options.lease_pings) {
        cv.wait_until(lock, next_ping, [&] { return stopping || !queue.empty(); });
      } else {
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
      }
      if (stopping) return;
      if (!queue.empty()) {
        std::function<void()> item = std::move(queue.front());
        queue.pop_front();
        lock.unlock();
        item();
        lock.lock();
        continue;
      }
      if (options.lease_pings && std::chrono::steady_clock::now() >= next_ping) {
        next_ping = std::chrono::steady_clock::now() + PingInterval();
        if (state.load() == SessionState::kConnected) {
          lock.unlock();
          SendPing();
          lock.lock();
        }
      }
    }
  }

  void SendPing() {
    std::shared_lock handle_lock(handle_mu);
    if (zh == nullptr) return;
    auto* ping = new PingContext{this, clock->Now()};
    if (zoo_aexists(zh, "/", 0, &PingCompletion, ping) != ZOK) delete ping;
  }

  // --- calls ---

  Status Error(int rc, const char* what, const std::string& path) const {
    StatusCode code = CodeOf(rc);
    if (rc == ZINVALIDSTATE) {
      // The C library knew of a final state before its event reached us.
      Status by_state = StateError(state.load());
      code = by_state.ok() ? StatusCode::kUnavailable : by_state.code();
    }
    return Status(code, std::string(what) + " " + path + ": " + zerror(rc));
  }

  // Sends a request through `submit(zh, completion_data)` and waits for its answer. Returns the
  // C result code (ZCLOSING if the handle is gone, ZOPERATIONTIMEOUT at the safety deadline).
  template <typename Submit>
  int Run(const std::shared_ptr<Call>& call, Submit submit) {
    if (const int rc = Send(call, submit); rc != ZOK) return rc;
    const auto deadline = milliseconds(2 * timeout_ms.load()) + std::chrono::seconds(5);
    std::unique_lock lock(call->mu);
    if (!call->cv.wait_for(lock, deadline, [&] { return call->done; })) return ZOPERATIONTIMEOUT;
    return call->rc;
  }

  // Sends a request through `submit(zh, completion_data)` without waiting: ZOK when the
  // completion will run (exactly once), else the C result code and it never runs.
  template <typename Submit>
  int Send(const std::shared_ptr<Call>& call, Submit submit) {
    call->core = this;
    std::shared_lock handle_lock(handle_mu);
    if (zh == nullptr) return ZCLOSING;
    call->sent = clock->Now();
    auto* holder = new CallHolder(call);
    const int rc = submit(zh, holder);
    if (rc != ZOK) delete holder;  // the completion will not run
    return rc;
  }

  // Registers `watcher` before the request that arms it, since its event may come before the
  // request's answer reaches the caller.
  uintptr_t RegisterWatch(Watcher watcher, bool on_completion_thread = false) {
    std::lock_guard lock(mu);
    const uintptr_t id = ++next_watch_id;
    watches.emplace(id, WatchEntry{std::move(watcher), session_id.load(), on_completion_thread});
    return id;
  }
  void UnregisterWatch(uintptr_t id) {
    std::lock_guard lock(mu);
    watches.erase(id);
  }

  // Fails at once unless connected: a call made while disconnected would otherwise wait in the
  // C library's queue.
  Status Ready() const { return StateError(state.load()); }

  // One asynchronous read in flight (GetAsync, ExistsAsync, GetChildrenAsync): owned by the C
  // library from a successful submit until its completion, which runs exactly once (with
  // ZCLOSING at the latest, from zookeeper_close).
  struct AsyncRead {
    Core* core = nullptr;
    MonoTime sent{};
    uintptr_t watch_id = 0;
    std::string path;
    GetDone get_done;
    ExistsDone exists_done;
    ChildrenDone children_done;
  };

  static std::unique_ptr<AsyncRead> TakeAsync(const void* data) {
    return std::unique_ptr<AsyncRead>(static_cast<AsyncRead*>(const_cast<void*>(data)));
  }
  // Records the answer for the lease and drops the watch if the server did not arm it.
  static void SettleAsync(const AsyncRead& read, int rc, bool armed) {
    if (AnsweredByServer(rc)) read.core->RecordAnswer(read.sent);
    if (read.watch_id != 0 && !armed) read.core->UnregisterWatch(read.watch_id);
  }
  static void AsyncDataCompletion(int rc, const char* value, int value_len, const ::Stat* stat,
                                  const void* data) {
    auto read = TakeAsync(data);
    SettleAsync(*read, rc, rc == ZOK);
    if (rc != ZOK) {
      read->get_done(read->core->Error(rc, "get", read->path));
      return;
    }
    NodeData node;
    if (value != nullptr && value_len > 0) node.data.assign(value, static_cast<size_t>(value_len));
    if (stat != nullptr) node.stat = ToStat(*stat);
    read->get_done(std::move(node));
  }
  static void AsyncStatCompletion(int rc, const ::Stat* stat, const void* data) {
    auto read = TakeAsync(data);
    SettleAsync(*read, rc, rc == ZOK || rc == ZNONODE);
    if (rc == ZNONODE) {
      read->exists_done(std::optional<Stat>());
    } else if (rc != ZOK) {
      read->exists_done(read->core->Error(rc, "exists", read->path));
    } else {
      read->exists_done(std::optional<Stat>(stat != nullptr ? ToStat(*stat) : Stat{}));
    }
  }
  static void AsyncStringsCompletion(int rc, const String_vector* strings, const void* data) {
    auto read = TakeAsync(data);
    SettleAsync(*read, rc, rc == ZOK);
    if (rc != ZOK) {
      read->children_done(read->core->Error(rc, "get children of", read->path));
      return;
    }
    std::vector<std::string> children;
    if (strings != nullptr) {
      for (int32_t i = 0; i < strings->count; ++i) children.emplace_back(strings->data[i]);
    }
    std::sort(children.begin(), children.end());
    read->children_done(std::move(children));
  }

  // Registers the watch, then submits; on a failed submit nothing stays registered.
  template <typename Submit>
  Status SubmitAsync(std::unique_ptr<AsyncRead> read, Watcher watch, WatchDelivery delivery,
                     const char* what, Submit submit) {
    if (Status s = Ready(); !s.ok()) return s;
    read->core = this;
    read->watch_id =
        watch ? RegisterWatch(std::move(watch), delivery == WatchDelivery::kCompletionThread) : 0;
    const uintptr_t watch_id = read->watch_id;
    const std::string path = read->path;
    int rc;
    {
      std::shared_lock handle_lock(handle_mu);
      if (zh == nullptr) {
        rc = ZCLOSING;
      } else {
        read->sent = clock->Now();
        AsyncRead* raw = read.release();
        rc = submit(zh, raw);
        if (rc != ZOK) read.reset(raw);  // the completion will not run
      }
    }
    if (rc == ZOK) return Status::Ok();
    if (watch_id != 0) UnregisterWatch(watch_id);
    return Error(rc, what, path);
  }

  ZkClientOptions options;
  const Clock* const clock;
  int log_slot = -1;

  // The handle's lifetime: C calls hold it shared; Close takes it exclusively to retire the handle.
  std::shared_mutex handle_mu;
  zhandle_t* zh = nullptr;

  std::atomic<SessionState> state{SessionState::kConnecting};
  std::atomic<int64_t> session_id{0};
  std::atomic<int64_t> timeout_ms{0};
  std::atomic<int64_t> lease_anchor{std::numeric_limits<int64_t>::min()};

  // Guards what follows; never held while calling the C library or user code.
  mutable std::mutex mu;
  std::condition_variable cv;  // queue items, state changes, stop
  std::deque<std::function<void()>> queue;
  bool stopping = false;
  bool closed = false;
  std::chrono::steady_clock::time_point next_ping = std::chrono::steady_clock::now();
  std::map<uintptr_t, WatchEntry> watches;
  uintptr_t next_watch_id = 0;
  StateListener listener;
  std::string password;
  std::thread dispatch;
  std::thread::id dispatch_id;
};

// ---------------------------------------------------------------------------------------------
// ZkClient

const char* ZkLogLevelName(ZkLogLevel level) {
  switch (level) {
    case ZkLogLevel::kError: return "error";
    case ZkLogLevel::kWarn: return "warn";
    case ZkLogLevel::kInfo: return "info";
    case ZkLogLevel::kDebug: return "debug";
  }
  return "unknown";
}

void ZkClient::SetLibraryLogLevel(ZkLogLevel level) {
  LogRouting& routing = Routing();
  std::lock_guard lock(routing.mu);
  routing.level_set = true;
  zoo_set_debug_level(static_cast<ZooLogLevel>(static_cast<int>(level)));
}

void ZkClient::SetDefaultLogSink(ZkLogSink sink) {
  LogRouting& routing = Routing();
  std::lock_guard lock(routing.mu);
  routing.default_sink = sink ? std::make_shared<const ZkLogSink>(std::move(sink)) : nullptr;
}

StatusOr<std::unique_ptr<ZkClient>> ZkClient::Connect(const ZkClientOptions& options) {
  if (options.connect.empty()) return InvalidArgument("ZooKeeper connect string is empty");
  if (!(options.lease_fraction > 0 && options.lease_fraction < 1)) {
    return InvalidArgument("ZooKeeper lease_fraction must be in (0, 1)");
  }
  if (options.session_timeout.count() <= 0 ||
      options.session_timeout.count() > std::numeric_limits<int>::max()) {
    return InvalidArgument("ZooKeeper session_timeout out of range");
  }
  if (options.acl != ZkAclPolicy::kOpen && !options.auth.has_value()) {
    return InvalidArgument("a ZooKeeper ACL policy other than open needs auth credentials");
  }
  if (options.resolve_delay.count() < -1 ||
      options.resolve_delay.count() > std::numeric_limits<int>::max()) {
    return InvalidArgument("ZooKeeper resolve_delay must be -1, 0 or a positive number of ms");
  }
  EnsureLibraryLogLevel();

  auto core = std::make_shared<Core>(options);
  core->log_slot = AcquireLogSlot(options.log_sink);
  core->Start();
  std::unique_ptr<ZkClient> client(new ZkClient(core));

  errno = 0;
  zhandle_t* zh = zookeeper_init2(options.connect.c_str(), &Core::SessionWatcher,
                                  static_cast<int>(options.session_timeout.count()), nullptr,
                                  core.get(), 0, TrampolineFor(core->log_slot));
  if (zh == nullptr) {
    const int error = errno;
    return InvalidArgument("cannot start a ZooKeeper session for '" + options.connect +
                           "': " + (error != 0 ? std::strerror(error) : "zookeeper_init failed"));
  }
  {
    std::unique_lock handle_lock(core->handle_mu);
    core->zh = zh;
  }
  if (options.resolve_delay.count() != 0) {
    zoo_set_servers_resolution_delay(zh, static_cast<int>(options.resolve_delay.count()));
  }
  if (options.auth.has_value()) {
    // Not logged, not in any Status: the credentials go straight to the library.
    const std::string credentials = options.auth->user + ":" + options.auth->password;
    const int rc = zoo_add_auth(zh, "digest", credentials.data(),
                                static_cast<int>(credentials.size()), nullptr, nullptr);
    if (rc != ZOK) return core->Error(rc, "add digest auth for user", options.auth->user);
  }
  if (options.connect_timeout.count() > 0) {
    if (Status s = client->WaitConnected(options.connect_timeout); !s.ok()) {
      return Status(s.code(), "ZooKeeper at '" + options.connect + "': " + s.message());
    }
  }
  return client;
}

ZkClient::ZkClient(std::shared_ptr<Core> core) : core_(std::move(core)) {}

ZkClient::~ZkClient() { Close(); }

void ZkClient::Close() {
  Core& core = *core_;
  {
    // First the queue: once the state reads final, no further callback starts.
    std::lock_guard lock(core.mu);
    if (core.closed) return;
    core.closed = true;
    core.stopping = true;
    core.queue.clear();
    core.watches.clear();
    if (!IsFinal(core.state.load())) core.state.store(SessionState::kClosed);
  }
  core.cv.notify_all();
  zhandle_t* zh;
  {
    // Waits for calls that are submitting a request; later ones find no handle.
    std::unique_lock handle_lock(core.handle_mu);
    zh = std::exchange(core.zh, nullptr);
  }
  // Ends the session (its ephemerals go at once), joins the library's threads and fails the
  // pending requests with ZCLOSING, which wakes their callers. No lock held: it may block.
  if (zh != nullptr) zookeeper_close(zh);
  ReleaseLogSlot(core.log_slot);
  if (core.dispatch.joinable()) {
    if (std::this_thread::get_id() == core.dispatch_id) {
      core.dispatch.detach();  // called from a callback: the thread holds its own Core reference
    } else {
      core.dispatch.join();
    }
  }
}

SessionState ZkClient::state() const { return core_->state.load(); }

int64_t ZkClient::session_id() const { return core_->session_id.load(); }

std::chrono::milliseconds ZkClient::session_timeout() const {
  return milliseconds(core_->timeout_ms.load());
}

std::chrono::milliseconds ZkClient::lease_remaining() const {
  const SessionState state = core_->state.load();
  if (IsFinal(state)) return milliseconds(0);
  const int64_t anchor = core_->lease_anchor.load();
  if (anchor == std::numeric_limits<int64_t>::min()) return milliseconds(0);
  const auto lease = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      milliseconds(core_->timeout_ms.load()) * core_->options.lease_fraction);
  const MonoTime end = MonoTime(std::chrono::steady_clock::duration(anchor)) + lease;
  const auto left = std::chrono::duration_cast<milliseconds>(end - core_->clock->Now());
  return std::max(left, milliseconds(0));
}

Status ZkClient::WaitConnected(std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(core_->mu);
    core_->cv.wait_for(lock, timeout,
                       [&] { return core_->state.load() != SessionState::kConnecting; });
  }
  const SessionState state = core_->state.load();
  if (state == SessionState::kConnecting) {
    return Status(StatusCode::kTimeout, "not connected to ZooKeeper within " +
                                            std::to_string(timeout.count()) + " ms");
  }
  if (state == SessionState::kConnected) {
    // One round trip so that the lease is running when this returns.
    auto ping = Exists("/");
    if (!ping.ok()) return ping.status();
  }
  return StateError(core_->state.load());
}

StatusOr<std::string> ZkClient::Create(const std::string& path, const std::string& data,
                                       CreateMode mode) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const ACL_vector* acl = AclFor(core_->options.acl);
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_acreate(zh, path.c_str(), data.data(), static_cast<int>(data.size()), acl,
                       ModeOf(mode), &Core::StringCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "create", path);
  return call->value;
}

namespace {
// An ACL_vector that points into `acl` (and `entries`): valid while both live and are unchanged.
ACL_vector ToCAcl(const Acl& acl, std::vector<ACL>* entries) {
  entries->clear();
  for (const AclEntry& e : acl) {
    entries->push_back(
        ACL{e.perms, Id{const_cast<char*>(e.scheme.c_str()), const_cast<char*>(e.id.c_str())}});
  }
  return ACL_vector{static_cast<int32_t>(entries->size()), entries->data()};
}
}  // namespace

StatusOr<std::string> ZkClient::CreateWithAcl(const std::string& path, const std::string& data,
                                              CreateMode mode, const Acl& acl) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  std::vector<ACL> entries;
  // The request is serialized when submitted, so the vector need only outlive the submit.
  const ACL_vector c_acl = ToCAcl(acl, &entries);
  auto call = std::make_shared<Core::Call>();
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_acreate(zh, path.c_str(), data.data(), static_cast<int>(data.size()), &c_acl,
                       ModeOf(mode), &Core::StringCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "create", path);
  return call->value;
}

StatusOr<AclData> ZkClient::GetAcl(const std::string& path) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_aget_acl(zh, path.c_str(), &Core::AclCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "get acl of", path);
  return AclData{call->acl, ToStat(call->stat)};
}

Status ZkClient::SetAcl(const std::string& path, const Acl& acl) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  std::vector<ACL> entries;
  ACL_vector c_acl = ToCAcl(acl, &entries);
  auto call = std::make_shared<Core::Call>();
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_aset_acl(zh, path.c_str(), -1, &c_acl, &Core::VoidCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "set acl of", path);
  return Status::Ok();
}

StatusOr<NodeData> ZkClient::Get(const std::string& path, Watcher watch) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const uintptr_t watch_id = watch ? core_->RegisterWatch(std::move(watch)) : 0;
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    if (watch_id == 0) return zoo_aget(zh, path.c_str(), 0, &Core::DataCompletion, holder);
    return zoo_awget(zh, path.c_str(), &Core::NodeWatcher, reinterpret_cast<void*>(watch_id),
                     &Core::DataCompletion, holder);
  });
  // The C library arms a data watch only on success.
  if (watch_id != 0 && rc != ZOK) core_->UnregisterWatch(watch_id);
  if (rc != ZOK) return core_->Error(rc, "get", path);
  return NodeData{call->value, ToStat(call->stat)};
}

StatusOr<std::optional<Stat>> ZkClient::Exists(const std::string& path, Watcher watch) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const uintptr_t watch_id = watch ? core_->RegisterWatch(std::move(watch)) : 0;
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    if (watch_id == 0) return zoo_aexists(zh, path.c_str(), 0, &Core::StatCompletion, holder);
    return zoo_awexists(zh, path.c_str(), &Core::NodeWatcher, reinterpret_cast<void*>(watch_id),
                        &Core::StatCompletion, holder);
  });
  // Armed on a present node (data watch) and on an absent one (creation watch).
  if (watch_id != 0 && rc != ZOK && rc != ZNONODE) core_->UnregisterWatch(watch_id);
  if (rc == ZNONODE) return std::optional<Stat>();
  if (rc != ZOK) return core_->Error(rc, "exists", path);
  return std::optional<Stat>(ToStat(call->stat));
}

StatusOr<std::vector<std::string>> ZkClient::GetChildren(const std::string& path, Watcher watch) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const uintptr_t watch_id = watch ? core_->RegisterWatch(std::move(watch)) : 0;
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    if (watch_id == 0) {
      return zoo_aget_children(zh, path.c_str(), 0, &Core::StringsCompletion, holder);
    }
    return zoo_awget_children(zh, path.c_str(), &Core::NodeWatcher,
                              reinterpret_cast<void*>(watch_id), &Core::StringsCompletion, holder);
  });
  if (watch_id != 0 && rc != ZOK) core_->UnregisterWatch(watch_id);
  if (rc != ZOK) return core_->Error(rc, "get children of", path);
  std::vector<std::string> children = std::move(call->strings);
  std::sort(children.begin(), children.end());
  return children;
}

StatusOr<Stat> ZkClient::Set(const std::string& path, const std::string& data, int32_t version) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_aset(zh, path.c_str(), data.data(), static_cast<int>(data.size()), version,
                    &Core::StatCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "set", path);
  return ToStat(call->stat);
}

Status ZkClient::Delete(const std::string& path, int32_t version) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  auto call = std::make_shared<Core::Call>();
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_adelete(zh, path.c_str(), version, &Core::VoidCompletion, holder);
  });
  if (rc != ZOK) return core_->Error(rc, "delete", path);
  return Status::Ok();
}

namespace {

// Fills `call` with the C library's form of `ops` and the buffers their results go to. The request
// is serialized when submitted, so the ops may point into `ops`; only the result buffers must live
// until the completion, hence in `call`.
void PrepareMulti(ZkClient::Core::Call& call, const std::vector<Op>& ops, const ACL_vector* acl);
// The Multi's outcome from the C result code and the results the library wrote into `call`.
StatusOr<MultiResult> MultiOutcome(ZkClient::Core& core, int rc, const ZkClient::Core::Call& call,
                                   const std::vector<Op>& ops, int* failed_op);

}  // namespace

StatusOr<MultiResult> ZkClient::Multi(const std::vector<Op>& ops, int* failed_op) {
  if (failed_op != nullptr) *failed_op = -1;
  if (Status s = core_->Ready(); !s.ok()) return s;
  if (ops.empty()) return MultiResult{};
  auto call = std::make_shared<Core::Call>();
  PrepareMulti(*call, ops, AclFor(core_->options.acl));
  const int rc = core_->Run(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_amulti(zh, static_cast<int>(ops.size()), call->ops.data(), call->results.data(),
                      &Core::VoidCompletion, holder);
  });
  return MultiOutcome(*core_, rc, *call, ops, failed_op);
}

Status ZkClient::MultiAsync(const std::vector<Op>& ops, MultiDone done) {
  if (Status s = core_->Ready(); !s.ok()) return s;
  if (ops.empty()) return InvalidArgument("multi: no ops to send");
  auto call = std::make_shared<Core::Call>();
  PrepareMulti(*call, ops, AclFor(core_->options.acl));
  Core* core = core_.get();
  // The completion needs the ops' kinds and paths (for the outcome), not their data.
  std::vector<Op> shapes;
  shapes.reserve(ops.size());
  for (const Op& op : ops) {
    Op shape = op;
    shape.data.clear();
    shapes.push_back(std::move(shape));
  }
  call->on_done = [core, shapes = std::move(shapes), done = std::move(done)](
                      const Core::Call& finished, int rc) {
    int failed = -1;
    StatusOr<MultiResult> result = MultiOutcome(*core, rc, finished, shapes, &failed);
    done(std::move(result), failed);
  };
  const int rc = core_->Send(call, [&](zhandle_t* zh, Core::CallHolder* holder) {
    return zoo_amulti(zh, static_cast<int>(ops.size()), call->ops.data(), call->results.data(),
                      &Core::VoidCompletion, holder);
  });
  if (rc != ZOK) {
    call->on_done = nullptr;  // not sent: `done` never runs
    return core_->Error(rc, "multi", "ops");
  }
  return Status::Ok();
}

namespace {

void PrepareMulti(ZkClient::Core::Call& call, const std::vector<Op>& ops, const ACL_vector* acl) {
  const size_t n = ops.size();
  call.ops.resize(n);
  call.results.assign(n, zoo_op_result_t{ZOK, nullptr, 0, nullptr});
  call.path_buffers.resize(n);
  call.stats.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Op& op = ops[i];
    zoo_op_t* c_op = &call.ops[i];
    switch (op.kind) {
      case Op::Kind::kCreate:
        call.path_buffers[i].assign(op.path.size() + 32, '\0');
        zoo_create_op_init(c_op, op.path.c_str(), op.data.data(),
                           static_cast<int>(op.data.size()), acl, ModeOf(op.mode),
                           call.path_buffers[i].data(),
                           static_cast<int>(call.path_buffers[i].size()));
        break;
      case Op::Kind::kSet:
        zoo_set_op_init(c_op, op.path.c_str(), op.data.data(), static_cast<int>(op.data.size()),
                        op.version, &call.stats[i]);
        break;
      case Op::Kind::kDelete: zoo_delete_op_init(c_op, op.path.c_str(), op.version); break;
      case Op::Kind::kCheck: zoo_check_op_init(c_op, op.path.c_str(), op.version); break;
    }
  }
}

StatusOr<MultiResult> MultiOutcome(ZkClient::Core& core, int rc, const ZkClient::Core::Call& call,
                                   const std::vector<Op>& ops, int* failed_op) {
  const size_t n = ops.size();
  if (rc != ZOK) {
    int index = -1;
    if (AnsweredByServer(rc)) {
      // The server marks ops before the failing one ZOK and those after it
      // ZRUNTIMEINCONSISTENCY: the first other code is the op that failed.
      for (size_t i = 0; i < n && i < call.results.size(); ++i) {
        const int err = call.results[i].err;
        if (err != ZOK && err != ZRUNTIMEINCONSISTENCY) {
          index = static_cast<int>(i);
          break;
        }
      }
    }
    if (failed_op != nullptr) *failed_op = index;
    const std::string where = index >= 0 ? "op " + std::to_string(index) + " (" +
                                               ops[static_cast<size_t>(index)].path + ")"
                                         : std::string("ops");
    return core.Error(rc, "multi", where);
  }
  MultiResult result;
  result.results.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (ops[i].kind == Op::Kind::kCreate) {
      result.results[i].created_path = call.path_buffers[i].data();
    } else if (ops[i].kind == Op::Kind::kSet) {
      result.results[i].stat = ToStat(call.stats[i]);
    }
  }
  return result;
}

}  // namespace

Status ZkClient::GetAsync(const std::string& path, Watcher watch, GetDone done,
                          WatchDelivery delivery) {
  auto read = std::make_unique<Core::AsyncRead>();
  read->path = path;
  read->get_done = std::move(done);
  const bool watched = static_cast<bool>(watch);
  return core_->SubmitAsync(std::move(read), std::move(watch), delivery, "get",
                            [&](zhandle_t* zh, Core::AsyncRead* raw) {
                              if (!watched) {
                                return zoo_aget(zh, path.c_str(), 0, &Core::AsyncDataCompletion,
                                                raw);
                              }
                              return zoo_awget(zh, path.c_str(), &Core::NodeWatcher,
                                               reinterpret_cast<void*>(raw->watch_id),
                                               &Core::AsyncDataCompletion, raw);
                            });
}

Status ZkClient::ExistsAsync(const std::string& path, Watcher watch, ExistsDone done,
                             WatchDelivery delivery) {
  auto read = std::make_unique<Core::AsyncRead>();
  read->path = path;
  read->exists_done = std::move(done);
  const bool watched = static_cast<bool>(watch);
  return core_->SubmitAsync(std::move(read), std::move(watch), delivery, "exists",
                            [&](zhandle_t* zh, Core::AsyncRead* raw) {
                              if (!watched) {
                                return zoo_aexists(zh, path.c_str(), 0,
                                                   &Core::AsyncStatCompletion, raw);
                              }
                              return zoo_awexists(zh, path.c_str(), &Core::NodeWatcher,
                                                  reinterpret_cast<void*>(raw->watch_id),
                                                  &Core::AsyncStatCompletion, raw);
                            });
}

Status ZkClient::GetChildrenAsync(const std::string& path, Watcher watch, ChildrenDone done,
                                  WatchDelivery delivery) {
  auto read = std::make_unique<Core::AsyncRead>();
  read->path = path;
  read->children_done = std::move(done);
  const bool watched = static_cast<bool>(watch);
  return core_->SubmitAsync(std::move(read), std::move(watch), delivery, "get children of",
                            [&](zhandle_t* zh, Core::AsyncRead* raw) {
                              if (!watched) {
                                return zoo_aget_children(zh, path.c_str(), 0,
                                                         &Core::AsyncStringsCompletion, raw);
                              }
                              return zoo_awget_children(zh, path.c_str(), &Core::NodeWatcher,
                                                        reinterpret_cast<void*>(raw->watch_id),
                                                        &Core::AsyncStringsCompletion, raw);
                            });
}

void ZkClient::SetStateListener(StateListener listener) {
  std::lock_guard lock(core_->mu);
  core_->listener = std::move(listener);
}

StatusOr<ZkSessionCredentials> ZkClient::credentials() const {
  std::lock_guard lock(core_->mu);
  if (core_->session_id.load() == 0) {
    return FailedPrecondition("the ZooKeeper session has not been established");
  }
  return ZkSessionCredentials{core_->session_id.load(), core_->password};
}

SessionFactory ZkClient::Factory(ZkClientOptions options) {
  return [options = std::move(options)]() -> StatusOr<std::unique_ptr<ZkSession>> {
    auto client = Connect(options);
    if (!client.ok()) return client.status();
    return std::unique_ptr<ZkSession>(std::move(*client));
  };
}

}  // namespace pgherald::zk
