// Orchestrator: the batch's ZooKeeper reads in flight together (PrefetchReads), and its
// re-affirmations sent together (SendReaffirmations).
//
// A round reads the master znode (its record and its vouchers) and each observation that changed
// since it was last read. At scale nearly every observation changes every tick (the LSN moves), so
// a batch of 64 clusters has about 200 reads to make. Made one after another, synchronously, they
// bound the verification cadence at round trips per second (about 4 ms each on a busy machine:
// docs/benchmarks.md, "Scale"). Here they are all sent with the session's asynchronous calls before
// any answer is awaited, and the answers go into the caches the round's own steps read from
// (ReadMaster, ReadObservations), with the same watches armed. Nothing here decides anything: a read
// that failed, or whose answer did not come in time, leaves its cache empty and its key disarmed,
// and the round reads it synchronously as it always did.
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/zk/answers.h"
#include "orchestrator/orchestrator.h"
#include "publishers/zk_publisher.h"

namespace pgherald::orchestrator {
namespace {

const log::Logger& Log() {
  static const log::Logger logger("orchestrator");
  return logger;
}

// One asynchronous read and its answer (filled on the session's completion thread).
struct Read {
  // kControl and kSwitchover are the exists checks (their watch covers a creation); kControlData
  // and kSwitchoverData read a znode that exists, without a watch (as ZkPublisher::ReadControl).
  enum class Kind {
    kMaster,
    kVouchers,
    kNodes,
    kObservation,
    kControl,
    kControlData,
    kSwitchover,
    kSwitchoverData,
    kIdentity,
    kEvents,
    kEventsExists,  // no events yet: an exists watch wakes the cluster at the first one
    // history/: whether a cluster's set-up has anything to do, and for a cluster taken over its
    // pzxid, then its children (kHistory) and its newest entry (kHistoryEntry): the facts that
    // back a record no voucher is bound to (ZkPublisher::ReadHistoryFacts).
    kHistoryExists,
    kHistory,
    kHistoryEntry,
  };
  Kind kind = Kind::kObservation;
  std::string cluster;
  const ClusterSpec* spec = nullptr;  // for a node list: which of its observations to read
  std::string path;
  std::string key;  // the watch key armed for it ("" when it was armed already)
  bool answered = false;
  Status status;
  zk::NodeData data;
  std::vector<std::string> children;
  bool exists = false;  // an exists check's answer
  std::int64_t pzxid = 0;  // history/'s, from its exists check on
};

bool IsGet(Read::Kind kind) {
  return kind == Read::Kind::kMaster || kind == Read::Kind::kObservation ||
         kind == Read::Kind::kControlData || kind == Read::Kind::kSwitchoverData ||
         kind == Read::Kind::kIdentity || kind == Read::Kind::kHistoryEntry;
}
bool IsExists(Read::Kind kind) {
  return kind == Read::Kind::kControl || kind == Read::Kind::kSwitchover ||
         kind == Read::Kind::kEventsExists || kind == Read::Kind::kHistoryExists;
}
// The round's own reads of these arm urgent watches (ReadControl, ReadSwitchover, WatchEvents),
// and so does the node list's read.
bool UrgentWatch(Read::Kind kind) {
  return kind == Read::Kind::kNodes || kind == Read::Kind::kControl ||
         kind == Read::Kind::kSwitchover || kind == Read::Kind::kEvents ||
         kind == Read::Kind::kEventsExists;
}

Read NewRead(Read::Kind kind, std::string cluster, std::string path, std::string key) {
  Read r;
  r.kind = kind;
  r.cluster = std::move(cluster);
  r.path = std::move(path);
  r.key = std::move(key);
  return r;
}

// The reads of one wave, shared with the completions: a late answer writes into this, never into
// the orchestrator.
struct Wave {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Read> reads;
  std::size_t pending = 0;
};

// Records the answer of `wave`'s read `i` (on the session's completion thread): `fill` moves a
// successful answer's value into the read.
template <typename T, typename Fill>
void Settle(Wave& wave, std::size_t i, StatusOr<T> got, Fill fill) {
  std::lock_guard lock(wave.mu);
  Read& r = wave.reads[i];
  r.answered = true;
  r.status = got.status();
  if (got.ok()) fill(r, std::move(*got));
  if (--wave.pending == 0) wave.cv.notify_all();
}

}  // namespace

bool Orchestrator::MasterCacheFresh(const std::string& cluster, const ClusterRuntime& rt) {
  return rt.master_cache.has_value() && Armed("master:" + cluster) &&
         Armed("vouchers:" + cluster);
}

void Orchestrator::PrefetchReads(const std::vector<const ClusterSpec*>& specs) {
  if (options_.dry_run || session_ == nullptr || publisher_ == nullptr || ownership_ == nullptr) {
    return;
  }
  if (session_->state() != zk::SessionState::kConnected) return;
  // The ownership queues that changed (a takeover's, a hand-off's), before the ownership steps.
  {
    std::vector<std::string> names;
    names.reserve(specs.size());
    for (const ClusterSpec* spec : specs) names.push_back(spec->name);
    ownership_->PrefetchQueues(names);
  }
  // Sends every read of `wave` at once, then waits for their answers (at most the session
  // timeout: a server that answers nothing expires us before that anyway).
  const auto run = [this](const std::shared_ptr<Wave>& wave) {
    if (wave->reads.empty()) return;
    std::unique_lock lock(wave->mu);
    for (std::size_t i = 0; i < wave->reads.size(); ++i) {
      Read& r = wave->reads[i];
      const std::string path = r.path;
      zk::Watcher watch = nullptr;
      if (!r.key.empty()) watch = WatchOnce(r.cluster, r.key, UrgentWatch(r.kind));
      if (watch == nullptr) r.key.clear();  // armed already: a watch of an earlier read is pending
      Status sent;
      ++wave->pending;
      lock.unlock();
      if (IsGet(r.kind)) {
        sent = session_->GetAsync(path, std::move(watch), [wave, i](StatusOr<zk::NodeData> got) {
          Settle(*wave, i, std::move(got), [](Read& x, zk::NodeData d) { x.data = std::move(d); });
        });
      } else if (IsExists(r.kind)) {
        sent = session_->ExistsAsync(
            path, std::move(watch), [wave, i](StatusOr<std::optional<zk::Stat>> got) {
              Settle(*wave, i, std::move(got), [](Read& x, std::optional<zk::Stat> st) {
                x.exists = st.has_value();
                if (st.has_value()) x.pzxid = st->pzxid;
              });
            });
      } else {
        sent = session_->GetChildrenAsync(
            path, std::move(watch), [wave, i](StatusOr<std::vector<std::string>> got) {
              Settle(*wave, i, std::move(got),
                     [](Read& x, std::vector<std::string> c) { x.children = std::move(c); });
            });
      }
      lock.lock();
      if (!sent.ok()) {
        // Not sent: `done` never runs.
        Read& x = wave->reads[i];
        x.answered = true;
        x.status = sent;
        --wave->pending;
      }
    }
    wave->cv.wait_for(lock, session_->session_timeout(), [&] { return wave->pending == 0; });
  };
  const auto observation_reads = [this](const ClusterSpec& spec, ClusterRuntime& rt,
                                        const std::vector<std::string>& children, Wave& wave) {
    const std::string& c = spec.name;
    const model::ClusterPaths paths = publisher_->Paths(c);
    for (const std::string& name : SelectedObservations(spec, children).names) {
      const std::string path = paths.Node(name);
      const std::string key = "node:" + path;
      if (rt.observation_cache.count(path) != 0 && Armed(key)) continue;
      wave.reads.push_back(NewRead(Read::Kind::kObservation, c, path, key));
    }
  };

  // First wave: the master znodes, the node lists that changed and the observations of the lists
  // still cached.
  auto first = std::make_shared<Wave>();
  const std::vector<std::string>& members = ownership_->members();
  for (const ClusterSpec* spec : specs) {
    const std::string& c = spec->name;
    // The clusters we own, and those the hash picks us for: a takeover (the owner is gone) owns
    // the cluster at the start of this very round, and its first round then finds its reads made
    // (a hand-off still waiting reads them for nothing, for as long as it waits).
    if (!ownership_->Owns(c) && PickOwner(c, members) != guid_) continue;
    ClusterRuntime& rt = runtime_[c];
    // The settling of a publish whose outcome is unknown comes first, in the round. (A cluster
    // not set up yet has nothing to read: the reads fail, and the round reads after its set-up.)
    if (publisher_->HasPending(c)) continue;
    const model::ClusterPaths paths = publisher_->Paths(c);
    if (!MasterCacheFresh(c, rt)) {
      first->reads.push_back(NewRead(Read::Kind::kMaster, c, paths.Master(), "master:" + c));
      first->reads.push_back(NewRead(Read::Kind::kVouchers, c, paths.Master(), "vouchers:" + c));
    }
    if (rt.children_cache && Armed("nodes:" + c)) {
      observation_reads(*spec, rt, *rt.children_cache, *first);
    } else {
      first->reads.push_back(NewRead(Read::Kind::kNodes, c, paths.Nodes(), "nodes:" + c));
      first->reads.back().spec = spec;
    }
    // What a first round reads once and then keeps while its watch holds (a takeover's, or every
    // cluster's after a new session): the control and switchover records, the identity, the
    // events watch.
    if (!rt.control_cache || !Armed("control:" + c)) {
      first->reads.push_back(NewRead(Read::Kind::kControl, c, paths.Control(), "control:" + c));
    }
    if (!rt.switchover_cache || !Armed("switchover:" + c)) {
      first->reads.push_back(
          NewRead(Read::Kind::kSwitchover, c, paths.Switchover(), "switchover:" + c));
    }
    if (!rt.identity) first->reads.push_back(NewRead(Read::Kind::kIdentity, c, paths.Identity(), ""));
    if (!Armed("events:" + c)) {
      first->reads.push_back(NewRead(Read::Kind::kEvents, c, paths.Events(), "events:" + c));
    }
    // The set-up (ZkPublisher::EnsureCluster: about nine synchronous round trips, a create per
    // path component) has nothing to do once the master znode, nodes/ and history/ exist; a
    // cluster taken over reads its history facts (its crashed owner's voucher is gone).
    if (!rt.ensured || !ownership_->Owns(c)) {
      first->reads.push_back(NewRead(Read::Kind::kHistoryExists, c, paths.History(), ""));
    }
  }
  run(first);

  // The answers into the caches. An unanswered or failed read leaves its cache empty and its key
  // disarmed: the round reads it itself.
  auto second = std::make_shared<Wave>();
  std::vector<Read> reads;
  {
    std::lock_guard lock(first->mu);
    reads = first->reads;  // a late answer writes into `first`, never into these
  }
  const auto fail = [this](const Read& r) {
    if (!r.key.empty()) Disarm(r.key);
  };
  // Per cluster not set up by this session: which of its master znode (1), nodes/ (2) and
  // history/ (4) were found to exist.
  std::map<std::string, int> found;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    const Read& r = reads[i];
    ClusterRuntime& rt = runtime_[r.cluster];
    const bool ok = r.answered && r.status.ok();
    switch (r.kind) {
      case Read::Kind::kMaster: {
        // Its vouchers' read comes right after it.
        const Read& v = reads[i + 1];
        ++i;
        rt.voucher = publishers::HeldVoucher{};
        if (ok && v.answered && v.status.ok()) {
          found[r.cluster] |= 1;
          rt.master_cache = publishers::DecodeMasterZnode(r.data, v.children);
        } else {
          rt.master_cache.reset();
          Disarm(r.key.empty() ? "master:" + r.cluster : r.key);
          Disarm(v.key.empty() ? "vouchers:" + r.cluster : v.key);
        }
        break;
      }
      case Read::Kind::kVouchers:
        break;  // with its master read
      case Read::Kind::kNodes:
        if (ok) {
          found[r.cluster] |= 2;
          rt.children_cache = r.children;
          observation_reads(*r.spec, rt, r.children, *second);
        } else {
          rt.children_cache.reset();
          fail(r);
        }
        break;
      case Read::Kind::kObservation:
        if (ok) {
          rt.observation_cache[r.path] = {r.data.data, r.data.stat.ephemeral_owner};
        } else {
          rt.observation_cache.erase(r.path);
          fail(r);
        }
        break;
      case Read::Kind::kControl:
      case Read::Kind::kSwitchover: {
        const bool control = r.kind == Read::Kind::kControl;
        if (control) {
          rt.control_cache.reset();
        } else {
          rt.switchover_cache.reset();
        }
        if (!ok) {
          fail(r);
        } else if (r.exists) {
          // Its content in the second wave; the watch armed here covers it.
          const Read::Kind data = control ? Read::Kind::kControlData : Read::Kind::kSwitchoverData;
          second->reads.push_back(NewRead(data, r.cluster, r.path, ""));
        } else if (control) {
          rt.control_cache = publishers::ControlState{};
        } else {
          rt.switchover_cache = std::optional<model::SwitchoverRecord>();
          rt.switchover_corrupt.clear();
        }
        break;
      }
      case Read::Kind::kIdentity:
        if (ok) {
          auto sysid = model::ParseIdentity(r.data.data);
          if (sysid.ok()) rt.identity = std::move(*sysid);  // else the round reads and says why
        }
        break;
      case Read::Kind::kEvents:
        if (ok) break;
        fail(r);
        // No events yet (no poller published one): an exists watch, as WatchEvents arms.
        if (r.answered && r.status.code() == StatusCode::kNotFound) {
          second->reads.push_back(NewRead(Read::Kind::kEventsExists, r.cluster, r.path,
                                          "events:" + r.cluster));
        }
        break;
      case Read::Kind::kHistoryExists:
        if (!ok || !r.exists) break;
        found[r.cluster] |= 4;
        if (!ownership_->Owns(r.cluster) &&
            !(rt.history_cache && rt.history_cache->pzxid == r.pzxid)) {
          second->reads.push_back(NewRead(Read::Kind::kHistory, r.cluster, r.path, ""));
          second->reads.back().pzxid = r.pzxid;
        }
        break;
      case Read::Kind::kHistory:
      case Read::Kind::kHistoryEntry:
      case Read::Kind::kControlData:
      case Read::Kind::kSwitchoverData:
      case Read::Kind::kEventsExists:
        break;  // not in the first wave
    }
  }
  for (const auto& [cluster, bits] : found) {
    if (bits == 7) runtime_[cluster].ensured = true;  // set up already (by an earlier owner)
  }

  // Second wave: the observations of the lists just read, the control and switchover records
  // that exist, and the history of the clusters taken over.
  run(second);
  auto third = std::make_shared<Wave>();
  {
    std::lock_guard lock(second->mu);
    for (const Read& r : second->reads) {
      ClusterRuntime& rt = runtime_[r.cluster];
      const bool ok = r.answered && r.status.ok();
      if (r.kind == Read::Kind::kHistory) {
        if (!ok) continue;  // the round reads it
        std::vector<std::string> names = r.children;
        if (names.empty()) {
          publishers::HistoryFacts facts;  // no entry at all
          facts.pzxid = r.pzxid;
          rt.history_cache = std::move(facts);
          continue;
        }
        // Zero-padded sequence numbers: the greatest name is the newest entry.
        const std::string newest = *std::max_element(names.begin(), names.end());
        third->reads.push_back(NewRead(Read::Kind::kHistoryEntry, r.cluster,
                                       publisher_->Paths(r.cluster).HistoryEntry(newest), ""));
        third->reads.back().pzxid = r.pzxid;
        continue;
      }
      if (r.kind == Read::Kind::kControlData) {
        // As ZkPublisher::ReadControl. Anything else (gone meanwhile, corrupt, failed) is left to
        // the round, which reads it again and says why; its watch is read again with it.
        auto parsed = ok && !r.data.data.empty() ? publishers::ParseControl(r.data.data)
                                                 : StatusOr<publishers::ControlState>(
                                                       publishers::ControlState{});
        if (ok && parsed.ok()) {
          parsed->version = r.data.stat.version;
          rt.control_cache = std::move(*parsed);
        } else {
          Disarm("control:" + r.cluster);
        }
        continue;
      }
      if (r.kind == Read::Kind::kEventsExists) {
        if (!ok) {
          fail(r);
        } else if (r.exists) {
          // Created meanwhile: the round arms the children watch (as WatchEvents does).
          Disarm(r.key.empty() ? "events:" + r.cluster : r.key);
          WakeCluster(r.cluster);
        }
        continue;
      }
      if (r.kind == Read::Kind::kSwitchoverData) {
        auto parsed = ok ? model::SwitchoverRecord::FromJson(r.data.data)
                         : StatusOr<model::SwitchoverRecord>(r.status);
        if (parsed.ok()) {
          parsed->version = r.data.stat.version;
          rt.switchover_cache = std::optional<model::SwitchoverRecord>(std::move(*parsed));
          rt.switchover_corrupt.clear();
        } else {
          Disarm("switchover:" + r.cluster);
        }
        continue;
      }
      if (ok) {
        rt.observation_cache[r.path] = {r.data.data, r.data.stat.ephemeral_owner};
      } else {
        rt.observation_cache.erase(r.path);
        fail(r);
      }
    }
  }

  // Third wave: the newest history entry of the clusters taken over.
  run(third);
  std::lock_guard lock(third->mu);
  for (const Read& r : third->reads) {
    if (!r.answered || !r.status.ok()) continue;  // the round reads the history itself
    auto entry = model::HistoryEntry::FromJson(r.data.data);
    // Only a publish entry decides (as ReadHistoryFacts); anything else is left to the round,
    // which reads further back.
    if (!entry.ok() || entry->action != "publish") continue;
    publishers::HistoryFacts facts;
    facts.pzxid = r.pzxid;
    facts.newest_epoch = entry->epoch;
    facts.last_publish = std::move(*entry);
    runtime_[r.cluster].history_cache = std::move(facts);
  }
}

void Orchestrator::SendReaffirmations() {
  if (reaffirms_.empty()) return;
  std::vector<PendingReaffirm> pending = std::move(reaffirms_);
  reaffirms_.clear();
  auto answers = std::make_shared<zk::Answers<StatusOr<zk::MultiResult>>>();
  std::vector<std::optional<std::size_t>> slot_of(pending.size());
  std::vector<bool> interrupted(pending.size(), false);
  for (std::size_t i = 0; i < pending.size(); ++i) {
    if (interruptions_.load() != pending[i].verified_at_count) {
      // An interruption since its verification began: that verification vouches for nothing.
      interrupted[i] = true;
      continue;
    }
    const std::size_t slot = answers->Add();
    slot_of[i] = slot;
    const Status sent = session_->MultiAsync(
        pending[i].reaffirmation.ops, [answers, slot](StatusOr<zk::MultiResult> result, int) {
          answers->Put(slot, std::move(result));
        });
    if (!sent.ok()) answers->Put(slot, sent);  // not sent: `done` never runs
  }
  const auto answered = answers->Wait(session_->session_timeout());
  std::vector<std::optional<StatusOr<zk::MultiResult>>> results(pending.size());
  for (std::size_t i = 0; i < pending.size(); ++i) {
    if (slot_of[i].has_value()) results[i] = answered[*slot_of[i]];
  }
  for (std::size_t i = 0; i < pending.size(); ++i) {
    const PendingReaffirm& p = pending[i];
    if (interrupted[i]) {
      WakeCluster(p.cluster);  // verified again at once, as a round interrupted itself
      continue;
    }
    ClusterRuntime& rt = runtime_[p.cluster];
    const std::optional<StatusOr<zk::MultiResult>>& got = results[i];
    if (got && got->ok()) {
      rt.voucher = p.reaffirmation.Held(**got);
      rt.affirmed = true;
      rt.last_affirm = p.at;
      rt.affirm_interruptions = p.verified_at_count;
      continue;
    }
    // Not re-affirmed: the next round reads the voucher first (a version that moved, a voucher
    // gone, a deposed owner's failed check), and runs at once.
    rt.voucher = publishers::HeldVoucher{};
    const Status error =
        got ? got->status() : Status(StatusCode::kTimeout, "no answer within the session timeout");
    Log().Warn("vouch_failed", {{"cluster", p.cluster}, {"error", error}});
    WakeCluster(p.cluster);
  }
}

}  // namespace pgherald::orchestrator
