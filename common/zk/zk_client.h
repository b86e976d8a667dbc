// ZkClient: the real ZkSession, over the ZooKeeper 3.8 C client (libzookeeper_mt).
//
// zk_client.cc is the only product file that includes <zookeeper/zookeeper.h> (test support's
// expire_session.cc is the other); this header is free of it (C++17, so the client library can use it).
//
// Threads. The C library runs two threads of its own (I/O and completions). Its callbacks do no
// work: a call's completion copies the result to the waiting caller and wakes it; a watch or
// session event is put on a queue served by ONE dispatch thread owned by the ZkClient, which runs
// the user's Watchers and StateListener, one at a time, in arrival order. The same thread sends
// the lease pings. zookeeper_close is only ever called from Close(), never from a callback.
//
// Lease. Every request records the monotonic time at which it was SENT; when the server answers
// it (any answer, errors included, but not connection loss) the lease anchor moves to that send
// time if later. A ping (an async exists on "/") goes out every timeout/6 while connected, so an
// idle session keeps its lease. lease_remaining = anchor + lease_fraction x negotiated timeout -
// now: the server heard from the session no earlier than the anchor, so it cannot expire the
// session before anchor + timeout. While the C client reports CONNECTING (a partition looks like
// that until it heals) the lease simply runs down.
//
// Calls. Synchronous from the caller's view (built on the async API). Calls made while the session
// is not connected fail at once with kConnectionLoss instead of queueing in the C library. A call
// whose answer never comes (it always does: the C client fails pending requests when the
// connection drops) returns kConnectionLoss after 2 x timeout + 5 s as a safety net.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/zk/zk_session.h"

namespace pgherald::zk {

// The C library's log levels. It filters globally (one level for the whole process).
enum class ZkLogLevel { kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };
const char* ZkLogLevelName(ZkLogLevel level);
// Receives one formatted line of the C library's log. Called on any thread (the library's own
// threads included): it must be quick, must not block and must not call ZooKeeper.
using ZkLogSink = std::function<void(ZkLogLevel level, const std::string& line)>;

// Digest credentials ("user:password"), sent with zoo_add_auth on every (re)connection. The
// password is never logged and never put in a Status message.
struct ZkDigestAuth {
  std::string user;
  std::string password;
};

struct ZkClientOptions {
  std::string connect;  // "host:port,host:port[/chroot]"
  std::chrono::milliseconds session_timeout{10000};  // requested; the server may negotiate
  double lease_fraction = 0.6;                       // of the negotiated timeout, in (0, 1)
  // Connect() waits this long for the first connection; zero returns at once (kConnecting).
  std::chrono::milliseconds connect_timeout{10000};
  const Clock* clock = nullptr;  // monotonic time for the lease; nullptr: SystemClock::Instance()
  std::optional<ZkDigestAuth> auth;
  ZkAclPolicy acl = ZkAclPolicy::kOpen;  // the ACL of every node this session creates
  // This session's C-library log lines. nullptr: the process-wide default sink (see
  // SetDefaultLogSink). Per-session routing has a fixed number of slots (128 live clients);
  // beyond that, lines go to the default sink.
  ZkLogSink log_sink;
  // How often the C library re-resolves the connect string's host names
  // (zoo_set_servers_resolution_delay). Zero, its default: at every poll of its socket, which
  // costs a getaddrinfo (netlink round trips) on every wake-up of its I/O thread. -1: only when a
  // connection is lost. > 0: at most once per that many milliseconds. Many sessions in one
  // process (libpgherald's fan-out) want -1.
  std::chrono::milliseconds resolve_delay{0};
  // The lease pings (see the top of this file). false: none are sent, so an idle session's
  // lease_remaining() runs down to zero while the session lives; for sessions that never look
  // at their lease (libpgherald's watches: one request less per session every timeout/6).
  bool lease_pings = true;
};

// What it takes to attach to a session from another handle. `password` is a secret.
struct ZkSessionCredentials {
  int64_t session_id = 0;
  std::string password;  // 16 raw bytes
};

class ZkClient final : public ZkSession {
 public:
  // Starts a session. Waits up to options.connect_timeout for the first connection: kTimeout
  // if it does not come (the attempt is abandoned), kPermissionDenied on an authentication
  // failure, kInvalidArgument on a bad connect string or option.
  static StatusOr<std::unique_ptr<ZkClient>> Connect(const ZkClientOptions& options);
  // A SessionFactory whose every call is Connect(options).
  static SessionFactory Factory(ZkClientOptions options);

  // The C library's global log level (default: kWarn, set by the first Connect unless set before).
  static void SetLibraryLogLevel(ZkLogLevel level);
  // Where C-library lines go when a client has no sink of its own (or no free routing slot).
  // nullptr (the default) writes them to stderr.
  static void SetDefaultLogSink(ZkLogSink sink);

  ~ZkClient() override;  // Close()
  ZkClient(const ZkClient&) = delete;
  ZkClient& operator=(const ZkClient&) = delete;

  SessionState state() const override;
  int64_t session_id() const override;
  std::chrono::milliseconds session_timeout() const override;
  std::chrono::milliseconds lease_remaining() const override;
  // On success the lease is running: it makes one round trip after the connection is up.
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
  StatusOr<std::string> CreateWithAcl(const std::string& path, const std::string& data,
                                      CreateMode mode, const Acl& acl) override;
  StatusOr<AclData> GetAcl(const std::string& path) override;
  Status SetAcl(const std::string& path, const Acl& acl) override;
  void SetStateListener(StateListener listener) override;
  // Queued callbacks are dropped, a running one is waited for (unless Close is called from it,
  // which the contract forbids; then it is not waited for), the handle is closed (this may block
  // for a few seconds). After Close returns no callback of this session runs.
  void Close() override;

  // The session's id and password, once connected (kFailedPrecondition before). For tests and for
  // tools that must attach to the same session; never log the password.
  StatusOr<ZkSessionCredentials> credentials() const;

  // Asynchronous reads: the contract is ZkSession's (zk_session.h). `done` runs on the C
  // library's completion thread.
  Status GetAsync(const std::string& path, Watcher watch, GetDone done,
                  WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status ExistsAsync(const std::string& path, Watcher watch, ExistsDone done,
                     WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status GetChildrenAsync(const std::string& path, Watcher watch, ChildrenDone done,
                          WatchDelivery delivery = WatchDelivery::kDispatchThread) override;
  Status MultiAsync(const std::vector<Op>& ops, MultiDone done) override;

  struct Core;  // the state shared with the C library's callbacks and the dispatch thread

 private:
  explicit ZkClient(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace pgherald::zk
