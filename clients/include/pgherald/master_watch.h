// libpgherald: follow the verified master of a pgherald cluster from an application.
//
// Public, installed header. C++17; no Poco, spdlog, yaml-cpp or ZooKeeper types. The C API over it
// is <pgherald/master_watch_c.h>.
//
// A MasterWatch opens its own ZooKeeper session, watches clusters/<c>/master and its voucher
// children, and keeps the latest MasterInfo. It re-arms the one-shot watches on every event and
// reconnect, applies a state only if its master znode's mzxid is newer than the last applied one,
// and rebuilds its session after expiry.
//
// Trust (docs/zookeeper-contract.md, "Rules for consumers"): only vouchers BOUND to the exact
// record read count (the voucher's name carries the record's epoch and the digest of its bytes);
// after an interruption of the watch's session the record counts again only once its voucher was
// re-affirmed after the reconnect. Whatever is not verified is kUnverified and carries the last
// VERIFIED master: a master is never taken from an unverified record.
//
// Threads: a MasterWatch has no thread of its own. Its session has the ZooKeeper C client's two
// threads and one dispatch thread; one runtime thread per process, shared by all watches, builds
// and closes sessions and runs retry timers. The change callback runs on one of these library
// threads (for a read change: the ZooKeeper client's completion thread, right after the read's
// answer), one call at a time and in order, never on the caller's thread and never under a lock
// that current(), OnChange() or WaitFor() take. It must not block for long (it holds up this
// watch's events) and must not destroy the MasterWatch. current() may be called from any thread.
// After the destructor returns no callback runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

// The shared libpgherald exports only what this header and <pgherald/master_watch_c.h> declare
// with PGHERALD_API (it is built with hidden visibility and a version script).
#ifndef PGHERALD_API
#define PGHERALD_API __attribute__((visibility("default")))
#endif

namespace pgherald::client {

enum class MasterStatus {
  kVouched,       // a master is published and a voucher bound to this exact record says it is
                  // verified now (re-affirmed since any interruption of the watch's session)
  kUnverified,    // no verified master now: no bound voucher (withdrawn, or a hand-written,
                  // replayed or foreign record), a record that does not decode, a deleted master
                  // znode, or a reconnect not yet followed by a re-affirmation. The fields are the
                  // last verified master's (it may be dead or stale), never the record's
  kNoMaster,      // the cluster has no master published (or the record says "no-master")
  kDisconnected,  // ZooKeeper cannot be reached; the last known master is kept, with its age
};
PGHERALD_API const char* MasterStatusName(MasterStatus status);

struct MasterInfo {
  MasterStatus status = MasterStatus::kDisconnected;
  std::string cluster;
  // kVouched: the record's master. kUnverified, kDisconnected: the last VERIFIED master (empty if
  // none was ever verified by this watch). kNoMaster: empty.
  std::string node;
  std::string host;
  int port = 0;
  std::uint32_t timeline = 0;
  std::uint64_t epoch = 0;
  int vouchers = 0;        // vouchers bound to the record read (others are not counted)
  std::int64_t mzxid = 0;  // of the master znode this state was read from (0: absent)
  // When this state was last confirmed by ZooKeeper, on the monotonic clock.
  std::chrono::steady_clock::time_point confirmed_at{};
  // Writes are safe only through a vouched master.
  bool writable() const { return status == MasterStatus::kVouched; }
};

// Where the embedder's log lines go; nullptr discards them. level: 0 debug, 1 info, 2 warn, 3
// error.
using LogSink = std::function<void(int level, const std::string& line)>;

struct MasterWatchOptions {
  std::string zk_connect;  // "host:port,host:port"
  std::string root = "/pgherald";
  std::string cluster;
  std::chrono::milliseconds session_timeout{6000};
  std::string zk_auth;  // optional "user:password" digest; never logged
  LogSink log;
  // Fan-out option. false (the default): this watch has a ZooKeeper session of its own. true: it
  // shares ONE session, and the one read per change, with every other MasterWatch of this
  // process that also sets it and has the same zk_connect, root, cluster, session_timeout and
  // zk_auth; the session closes when the last of them is destroyed. Each keeps its own
  // current(), WaitFor() and callback; on a change the callbacks of all of them run one after
  // another on the same library thread (a slow one delays the others), and a callback must not
  // destroy any watch of its group. Every member's log sink receives the group's lines.
  bool share_session = false;
};

class PGHERALD_API MasterWatch {
 public:
  using Callback = std::function<void(const MasterInfo&)>;

  // Starts watching. Returns nullptr and sets *error on bad options; an unreachable ZooKeeper is
  // not an error (the state is kDisconnected until it connects).
  static std::unique_ptr<MasterWatch> Start(const MasterWatchOptions& options,
                                            std::string* error = nullptr);
  virtual ~MasterWatch() = default;

  virtual MasterInfo current() const = 0;
  // Called with every change of current() (status, master, vouchers). Replaces an earlier one.
  virtual void OnChange(Callback callback) = 0;
  // Blocks until current() satisfies `pred` or the timeout passes; returns whether it did.
  virtual bool WaitFor(const std::function<bool(const MasterInfo&)>& pred,
                       std::chrono::milliseconds timeout) = 0;
};

// A libpq connection string for the current master ("host=... port=... " + extra), or "" when the
// master is not writable().
PGHERALD_API std::string MasterConninfo(const MasterInfo& info, const std::string& extra = "");

}  // namespace pgherald::client
