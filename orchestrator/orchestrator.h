// Orchestrator: the I/O shell around Decide() (decision.h). Owns the ZooKeeper session (rebuilt
// after expiry), the membership (LeaderElection, the member registry), the per-cluster ownership
// (ownership.h), the ZooKeeper publisher and the per-cluster decision memory.
//
// A round (RunRound) registers the member and reads the members; then per cluster, first its
// ownership step (queue, resign between two of its rounds, or wait: ownership.h), and while this
// instance owns the cluster:
//   0. settle an earlier publish whose outcome was unknown (ZkPublisher::Reconcile) before
//      anything else; while it stays unknown the cluster is left alone;
//   1. read control, the switchover record (control/switchover), master (+vouchers), identity and
//      the pollers' observations, arming one watch per znode (never more than one pending per
//      path), so that any change wakes the loop; a switchover's phase change gets a history entry;
//   2. probe every node (configured ones, plus nodes learned from observations) in parallel;
//   3. write-check the nodes WriteCheckTargets() names;
//   4. Decide(), log the verdict with its evidence (info on a change, debug otherwise);
//   5. unless dry-run, and only while it still owns the cluster, carry it out: publish by the
//      fenced multi and vouch; keep (vouch); withdraw (unvouch); and mirror any change to the
//      other publishers.
// Rounds run in batches: steps 0-1 ("prepare") for each cluster of the batch, then steps 2 and 3
// once for all of them (one ProbeAll over the nodes of every prepared round, one WriteCheckEach
// over their write-check targets, each with its own cluster's context), then steps 4-5
// ("finish") for each. A batch of one is a cluster's round as it ran before batches.
// A non-owner of a cluster (or an owner whose session is CONNECTING or out of lease) acts on
// nothing there: it only removes its own voucher of that cluster when it can. Every fenced write
// of a cluster checks this instance's candidate znode in the cluster's ownership queue.
//
// Run() is the daemon's loop, which schedules clusters in batches (docs/orchestrator.md,
// "Scheduling"): a watch wakes the cluster it belongs to (WakeCluster; a session state change, an
// election event or a reload is global: Wake() marks every cluster); the loop runs woken clusters
// first, then the clusters of a global sweep, then those whose periodic verification is due
// (every verify_interval, each cluster at its own phase so that N clusters spread evenly over the
// interval; a vouched cluster also when its voucher re-affirmation is due, if that comes sooner;
// a cluster with an unsettled publish a tick later). A batch takes every cluster that is ready,
// up to batch_max: woken clusters first, with room for a routine share (RoutineShare: batch_max/8,
// at least 1) of sweep and due clusters so that constant wakes never starve them; a cluster woken
// while a batch is being prepared joins it in place of the routine clusters not prepared yet
// beyond that share (they go back to their queues), and woken rounds finish first. So a woken
// cluster waits at most for the reads of one round in progress and of the routine share, and the
// batch's probe and write-check calls. The session and election step runs before each pass and
// at least every tick (checked between batches). Tests drive RunRound() (every
// cluster once) or RunDue() (one pass of the scheduler) directly (the simulation uses FakeZk's
// manual dispatch and a ManualClock).
//
// Threads: RunRound and Run on one thread; Wake() from any thread (watchers call it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/zk/zk_session.h"
#include "orchestrator/decision.h"
#include "orchestrator/election.h"
#include "orchestrator/learn_policy.h"
#include "orchestrator/ownership.h"
#include "orchestrator/probe.h"
#include "publishers/publisher.h"
#include "publishers/zk_publisher.h"

namespace pgherald::orchestrator {

struct ClusterSpec {
  std::string name;
  std::vector<NodeTarget> nodes;  // configured nodes (may be empty when learned)
  // Credentials and timeouts for nodes learned from observations (host and port come from the
  // observation; the password only when the options authenticate the server: learn_policy.h).
  pg::PgParams defaults;
  LearnPolicy learn;  // which observed nodes are probed too (learn_policy.h)
};

struct OrchestratorOptions {
  std::string id;                // this instance: decided_by, voucher name, heartbeat row key
  std::string root = "/pgherald";
  // The loop's granularity: the session and election step runs at least this often, and a
  // cluster with an unsettled publish is retried after it.
  Millis tick{1000};
  // Each cluster is verified (a full round) at least this often, staggered over the interval.
  Millis verify_interval{1000};
  Policy policy;                 // confirmation window, strict mode, ages (paused is per round)
  Millis probe_timeout{2000};    // a round waits this long for its probes, then for write checks
  bool dry_run = false;
  int history_limit = 1000;
  bool learn_nodes = true;       // master switch: false learns nothing, whatever ClusterSpec::learn says
  // The leader re-affirms its voucher (rewrites its data, so its mzxid moves) at most this often,
  // after a round whose write check of the published master passed (docs/orchestrator.md).
  Millis voucher_reaffirm{1000};
  // At most this many clusters' rounds share one batch (one probe call, one write-check call);
  // 1 runs the clusters one after another. Values below 1 count as 1.
  int batch_max = 64;
  // Keep connections open to the nodes of the clusters this instance is next in line to own (the
  // hash's pick once their owner leaves, or its pick waiting for the hand-off), so that a
  // takeover probes over open connections: docs/orchestrator.md, "Connections kept for a takeover".
  bool successor_connections = true;
};

using SessionFactory = zk::SessionFactory;

class Orchestrator;

// Watches the loop (the HTTP API's StatusBoard, metrics.h). Both calls run on the loop's thread
// and must not block for long; an observer never changes what the loop decides.
class RoundObserver {
 public:
  virtual ~RoundObserver() = default;
  // After Decide(), before the verdict is carried out (owners only).
  virtual void OnDecision(const std::string& cluster, const DecisionInput& input,
                          const Verdict& verdict) = 0;
  // After every round of Run() (leader or not, connected or not).
  virtual void AfterRound(Orchestrator& orchestrator) = 0;

  // A znode of `cluster` could not be used this round, or the published master is in doubt:
  // `kind` is "master_unreadable", "master_missing", "master_unbacked",
  // "published_master_unreachable", "observation_corrupt", "observation_not_ephemeral" or
  // "switchover_corrupt" (the switchover record is ignored while it does not parse). Called
  // once per round while it lasts (a counter of rounds affected); the log line comes once per
  // change.
  virtual void OnPayloadProblem(const std::string& cluster, const std::string& kind) {
    (void)cluster;
    (void)kind;
  }
};

class Orchestrator {
 public:
  // `prober` and `clock` must outlive this object; `mirrors` too. `guid` "" draws a random one.
  Orchestrator(OrchestratorOptions options, std::vector<ClusterSpec> clusters,
               SessionFactory session_factory, NodeProber* prober, const Clock* clock,
               std::vector<publishers::Publisher*> mirrors = {}, std::string guid = "");
  ~Orchestrator();

  // One round over every cluster (see the top of this file), in batches of batch_max.
  void RunRound();
  // One pass of the scheduler: the session and election step, then the woken clusters, the rest
  // of a global sweep and the clusters whose verification is due, in batches, woken ones first;
  // returns when none is left, a global event asks for the session step again or a tick passed.
  void RunDue();
  // When the next pass has work (now if a cluster is woken; at the latest `pass_start` + tick).
  MonoTime NextWakeup(MonoTime pass_start);
  // Passes until `stop` is set (call Wake() after setting it).
  void Run(const std::atomic<bool>& stop);
  // A global event: the next pass redoes the session and election step and runs every cluster.
  void Wake();
  // Any thread: `cluster` runs in the next pass, before the clusters that are merely due;
  // `urgent` (a repmgr event, a node's observation appearing or vanishing, a watched znode
  // deleted, the operator's control or switchover record changed): ahead of the clusters woken by
  // a mere observation refresh too.
  void WakeCluster(const std::string& cluster, bool urgent = false);
  // Any thread (the prober's connection-lost handler): the server at host:port closed a connection
  // the prober kept (PostgreSQL crashed, was killed or is shutting down). Every cluster with a
  // node there, configured or learned, that this instance owns runs in the next pass, urgently.
  void NodeConnectionLost(const std::string& host, int port);

  // What the scheduler did (the loop's thread): rounds run per (cluster, trigger), the trigger
  // being "watch" (woken), "sweep" (global event), "verify" (due) or "retry" (unsettled publish).
  const std::map<std::pair<std::string, std::string>, std::uint64_t>& cluster_rounds() const {
    return cluster_rounds_;
  }
  // The longest a due verification waited past its due time since the last
  // ResetVerificationLag(), counting those still waiting now.
  Millis verification_lag();
  void ResetVerificationLag() { max_lag_ = Millis(0); }
  // SIGHUP (any thread): the clusters to act on from the next round on (orchestrator_reload.cc).
  // A cluster no longer listed has its voucher withdrawn (best effort) and its memory dropped; a
  // new one starts with none and runs in the next pass (the loop is woken); the others keep their
  // schedule (moved to their new phase).
  void ReplaceClusters(std::vector<ClusterSpec> clusters);

  // Whether this instance owned at least one cluster as of its last round (it "leads" some).
  bool leading() const { return !owned_.empty(); }
  // The clusters this instance owned as of their last rounds.
  const std::set<std::string>& owned_clusters() const { return owned_; }
  // How many clusters this instance does not own but is next in line for, as of their last
  // rounds (the connections it keeps for a takeover: OrchestratorOptions::successor_connections).
  std::size_t successor_clusters() const {
    std::lock_guard lock(mu_);
    return next_in_line_.size();
  }
  // Ownership changes (a cluster acquired or lost) since start.
  std::uint64_t ownership_changes() const { return ownership_changes_; }
  // This instance's candidate znode in `cluster`'s ownership queue ("" when not queued): the
  // fence of its writes for the cluster.
  std::string owner_znode(const std::string& cluster) const;
  // The session in use (null before the first round or while it cannot be built).
  zk::ZkSession* session() const { return session_.get(); }
  // This instance's member znode (orchestrators/election), "" until it exists.
  const std::string& election_znode() const;
  const std::string& guid() const { return guid_; }
  const OrchestratorOptions& options() const { return options_; }
  // Deletes the vouchers, every ownership candidate and the member znode (clean shutdown: the
  // successors take over at once).
  void Resign();
  // Optional; must outlive this object. Set before Run().
  void set_observer(RoundObserver* observer) { observer_ = observer; }

 private:
  struct ClusterRuntime {
    DecisionMemory memory;
    bool ensured = false;
    std::optional<std::string> identity;
    std::map<std::string, std::pair<std::uint64_t, MonoTime>> seen_seq;  // node -> (seq, since)
    std::string last_summary;  // to log transitions once
    std::string last_mirrored;
    bool vouched = false;  // we may hold a voucher
    // The prober may keep connections to its nodes (we owned it or were next in line): closed
    // once we are neither (KeepConnections).
    bool connected = false;
    // What the last reads returned, by watch key, valid while that key's watch is still armed
    // (the znode has not changed since, as far as the server has told us): a round woken by one
    // observation re-reads that observation only. Dropped with the session.
    // The master znode (record, stat, vouchers) while both its data watch ("master:<c>") and its
    // children watch ("vouchers:<c>") are armed, and dropped after every write of ours to it or
    // its children (our own change's watch event may still be on its way). A stale version only
    // makes a compare-and-set fail, which is read again, never retried blind.
    std::optional<publishers::MasterZnode> master_cache;
    // The voucher our last Vouch of this session found or made ours (name, version, affirm_seq);
    // cleared whenever the master's children are read again. While it is among the cached
    // children, Vouch needs no read of it: kHeld at once, or the re-affirming Set on the version
    // it knows (a deletion fires the children watch, and a replacement under the same name needs
    // a deletion first).
    publishers::HeldVoucher voucher;
    std::optional<publishers::ControlState> control_cache;
    // clusters/<c>/control/switchover as last read (the outer optional: whether a read is cached;
    // the inner: whether the record exists), valid while its watch is armed, as control_cache.
    std::optional<std::optional<model::SwitchoverRecord>> switchover_cache;
    std::string switchover_corrupt;  // why the cached read did not parse ("" when it did)
    // The switchover state last seen ("<id>/<phase>", "<id>/expired", "" for none): one history
    // entry per change (RecordSwitchoverPhase).
    std::string switchover_seen;
    std::optional<std::vector<std::string>> children_cache;
    struct CachedObservation {
      std::string data;
      std::int64_t ephemeral_owner = 0;
    };
    std::map<std::string, CachedObservation> observation_cache;  // by znode path
    std::map<std::string, std::string> learn_state;  // node -> "" (learned) or reason, to log changes
    std::vector<NodeTarget> learned;                 // last round's learned targets
    // Conditions that may hold round after round (a corrupt master or observation znode), by key
    // ("master", or the znode path), with the message last logged: each is logged once per change,
    // not once per round (see ReportProblem).
    std::map<std::string, std::pair<std::string, std::string>> problems;  // key -> (kind, message)
    // The master record read was not trusted (unreadable, missing, unbacked): until a publish
    // lands, the record is rewritten from the first verified decision (DecisionInput::repair).
    bool repair = false;
    std::optional<publishers::HistoryFacts> history_cache;  // by the history znode's pzxid
    // The last re-affirmation (or creation) of our voucher: when, and the interruption count then.
    MonoTime last_affirm{};
    std::uint64_t affirm_interruptions = 0;
    bool affirmed = false;
    // The scheduler: when its last round started (epoch: never) and its number (round_seq_),
    // when the next is due and whether that is the retry of an unsettled publish.
    MonoTime last_start{};
    std::uint64_t last_seq = 0;
    MonoTime due{};
    bool due_retry = false;
  };

  // The loop's thread, at the start of a round: takes what ReplaceClusters() left.
  void TakePendingClusters();
  bool EnsureSession();
  // One cluster's round (see the top of this file), in named steps over a ClusterRound. A step
  // that returns false ends the cluster's round (it logged why). PrepareRound runs steps 0-1 and
  // returns the round, or null when it ended there; ProbeRounds runs steps 2-3 for a batch of
  // prepared rounds at once; FinishRound runs steps 4-5.
  struct ClusterRound;
  std::unique_ptr<ClusterRound> PrepareRound(const ClusterSpec& spec, ClusterRuntime& rt);
  void ProbeRounds(const std::vector<ClusterRound*>& rounds);
  void FinishRound(ClusterRound& round);
  bool SettleEarlierPublish(ClusterRound& round);
  bool ReadControl(ClusterRound& round);
  bool ReadSwitchover(ClusterRound& round);
  void RecordSwitchoverPhase(ClusterRound& round);
  bool ReadMaster(ClusterRound& round);
  bool ReadFacts(ClusterRound& round);
  bool JudgeTrust(ClusterRound& round);
  bool ReadIdentity(ClusterRound& round);
  void FillInput(ClusterRound& round);
  void ReadObservations(ClusterRound& round);
  // The observations of `children` (the names under nodes/) a round reads (learn_policy.h).
  static ObservationSelection SelectedObservations(const ClusterSpec& spec,
                                                   std::vector<std::string> children);
  // The batch's reads in flight together (orchestrator_prefetch.cc): for every cluster of
  // `entries` this instance owns, the master znode, its nodes' list and the observations whose
  // cache is stale are read with the session's asynchronous calls, all sent before any answer is
  // awaited, into the runtime's caches (watches armed as the synchronous reads would). The round's
  // own steps then find them cached; whatever is not (an answer that failed or came late) they
  // read synchronously as before.
  void PrefetchReads(const std::vector<const ClusterSpec*>& specs);
  // Whether `rt.master_cache` may stand for a read of the master znode (both watches armed).
  bool MasterCacheFresh(const std::string& cluster, const ClusterRuntime& rt);
  std::string Learn(ClusterRound& round, const std::vector<std::string>& configured_hosts,
                    const std::string& name, const model::NodeObservation& obs);
  void LogLearnChanges(const ClusterRound& round,
                       const std::map<std::string, std::string>& learn_state);
  void ForgetUnlearned(ClusterRound& round);
  Verdict DecideAndLog(ClusterRound& round);
  bool InterruptedSince(const ClusterRound& round) const;
  void Keep(ClusterRound& round);
  void Withdraw(ClusterRound& round, const Verdict& verdict);
  void Publish(ClusterRound& round, const Verdict& verdict);
  double MillisSince(MonoTime t) const;
  void StepDown();
  // The ownership step of a cluster (between two of its rounds): true when this instance owns it
  // now. A non-owner removes its own voucher of the cluster when it can. `next_in_line`: whether
  // it does not own the cluster but the hash picks it, now or once the owner leaves (kept in
  // next_in_line_ too).
  bool TakeOwnership(const std::string& cluster, ClusterRuntime& rt, bool* next_in_line);
  // A cluster this instance does not own: while it is next in line, its nodes join warm_ (their
  // connections are opened after the batch's probe call); once it is not, the connections the
  // prober keeps for them are closed.
  void KeepConnections(const ClusterSpec& spec, ClusterRuntime& rt, bool next_in_line);
  void LoseOwnership(const std::string& cluster, const char* why);
  // A watcher that wakes `cluster` (WakeCluster, `urgent` or not; "" wakes every cluster: a global
  // event), armed at most once per key until it fires.
  zk::Watcher WatchOnce(const std::string& cluster, const std::string& key, bool urgent = false);
  // Arms the watch on clusters/<c>/events (its children; its existence while it is missing): a
  // repmgr event a poller publishes (a promotion, a follow, a rejoin) wakes the cluster urgently.
  void WatchEvents(ClusterRound& round);
  bool Armed(const std::string& key);
  // Forgets `key` after a read whose watch was not armed (the read failed): the next read arms
  // it again. Without this a znode that was absent once would never wake the loop again.
  void Disarm(const std::string& key);
  void Mirror(const std::string& cluster, ClusterRuntime& rt, const model::MasterRecord& record,
              bool vouched);
  // Counts a round affected by `kind` (RoundObserver::OnPayloadProblem) and logs it as a warning
  // (event `kind`, with the cluster, `path`, `message` and `effect`) only when `message` differs
  // from what was last logged under `key`. ClearProblem ends whatever problem `key` had, logging
  // `<kind>_cleared` once.
  void ReportProblem(const std::string& cluster, ClusterRuntime& rt, const std::string& key,
                     const std::string& kind, const std::string& path, const std::string& message,
                     const std::string& effect);
  void ClearProblem(const std::string& cluster, ClusterRuntime& rt, const std::string& key);
  // Makes sure our voucher bound to `master` exists; re-affirms it when due (voucher_reaffirm).
  // Only with a verification of the record's master that passed and began at interruption count
  // `verified_at_count`. Returns whether a voucher of ours is held.
  bool VouchFor(const std::string& cluster, ClusterRuntime& rt, const std::string& owner_path,
                const publishers::MasterZnode& master, std::int64_t verified_at_ms,
                std::uint64_t verified_at_count);

  // The nodes of the batch's clusters this instance is next in line to own (KeepConnections),
  // handed to NodeProber::Warm after the batch's probe call.
  std::vector<NodeTarget> warm_;
  // The clusters this instance is next in line for as of their last ownership steps (under mu_:
  // the queues' watchers read it).
  std::set<std::string> next_in_line_;
  OrchestratorOptions options_;
  std::vector<ClusterSpec> clusters_;
  SessionFactory session_factory_;
  NodeProber* prober_;
  const Clock* clock_;
  std::vector<publishers::Publisher*> mirrors_;
  std::string guid_;

  std::unique_ptr<zk::ZkSession> session_;
  std::unique_ptr<LeaderElection> election_;
  std::unique_ptr<ClusterOwnership> ownership_;
  std::unique_ptr<publishers::ZkPublisher> publisher_;
  std::map<std::string, ClusterRuntime> runtime_;
  std::set<std::string> owned_;  // clusters owned as of their last rounds
  std::uint64_t ownership_changes_ = 0;
  std::string last_session_state_;
  // Incremented on every session state event (a disconnect, a reconnect, an expiry) and on every
  // new session: a verification started at count N may vouch only while the count is still N.
  std::atomic<std::uint64_t> interruptions_{0};
  RoundObserver* observer_ = nullptr;

  // Shared with watchers (which may run after a session is replaced, never after destruction:
  // the session is closed first).
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::set<std::string> armed_;
  std::optional<std::vector<ClusterSpec>> pending_clusters_;  // from ReplaceClusters()
  bool sweep_ = true;                      // Wake(): every cluster runs (the first pass too)
  std::deque<std::string> woken_order_;    // WakeCluster(), first woken first
  std::set<std::string> woken_clusters_;   // the same, to wake each at most once
  std::set<std::string> urgent_clusters_;  // those of them woken urgently (at the queue's front)
  std::set<std::pair<std::string, int>> lost_endpoints_;  // NodeConnectionLost(), not yet woken

  // The scheduler (the loop's thread only; orchestrator_schedule.cc).
  enum class PassKind { kEveryCluster, kScheduled };
  // The session and election step, then RunClusters(kind) while this instance leads.
  void RunPass(PassKind kind);
  void RunClusters(PassKind kind);
  // Wakes the clusters of the endpoints NodeConnectionLost() reported (the loop's thread).
  void WakeClustersOfLostNodes();
  // After a pass: a follower forgets what woke its clusters (it sweeps when it leads again).
  void IdleUnlessLeading();
  // A cluster in a batch and why it runs ("watch", "sweep", "verify", "retry").
  struct Scheduled {
    const ClusterSpec* spec;
    const char* trigger;
  };
  // Runs the rounds of `batch` (prepare each, probe all, finish each: see the top of this file)
  // and schedules each cluster's next round. With `yield_to_woken`, a cluster woken meanwhile
  // joins in place of the routine clusters not prepared yet beyond the routine share (PutBack)
  // and finishes first; one woken urgently joins in place of every cluster not prepared yet
  // (RequeueWoken, PutBack) and finishes before the others; a global event puts back every
  // routine cluster not prepared yet.
  void RunBatch(std::vector<Scheduled> batch, bool yield_to_woken);
  // The scheduler's bookkeeping of one round: before it (returns its start) and after it.
  MonoTime StartRound(const Scheduled& entry);
  void EndRound(const Scheduled& entry, MonoTime start);
  // The next batch (empty: nothing ready): the urgently woken clusters alone when there are any;
  // else the woken clusters, then the rest of a sweep, then the most overdue (only the routine
  // share of them when there are woken ones); at most batch_max, each cluster once.
  std::vector<Scheduled> NextBatch(MonoTime now);
  // Woken clusters not in `busy`, first woken first, at most `max` (taken off the woken queue;
  // those in `busy` stay queued); WokenWaiting only looks.
  // `urgent` (not null) receives the names of those woken urgently.
  std::vector<Scheduled> TakeWoken(std::size_t max, const std::set<std::string>& busy,
                                   std::set<std::string>* urgent = nullptr);
  bool WokenWaiting(const std::set<std::string>& busy);
  // Urgently woken clusters not in `busy` (they run in a batch of their own: see NextBatch).
  std::size_t UrgentWaiting(const std::set<std::string>& busy);
  // Woken entries taken for a batch but not run go back to the front of the woken queue.
  void RequeueWoken(const std::vector<Scheduled>& entries);
  // Entries taken for a batch but not run go back to the sweep and due queues.
  void PutBack(const std::vector<Scheduled>& entries);
  std::size_t BatchMax() const;
  // How many routine (sweep, due) rounds a batch with woken clusters keeps room for.
  std::size_t RoutineShare() const;
  // After clusters_ changed: the index by name and each cluster's phase in the interval.
  void IndexClusters();
  void SetDue(const std::string& cluster, ClusterRuntime& rt, MonoTime due);
  std::map<std::string, std::size_t> index_;  // cluster -> position in clusters_
  std::map<std::string, std::chrono::nanoseconds> phase_;  // cluster -> offset in the interval
  std::uint64_t round_seq_ = 0;                // cluster rounds run so far
  std::uint64_t sweep_seq_ = 0;                // round_seq_ when the current sweep began
  MonoTime grid_epoch_;                        // verification phases count from here
  std::deque<std::string> sweep_left_;         // clusters of the current sweep not yet run
  // Whether the last batch was cut short or made for urgent clusters: the next one is an ordinary
  // batch (urgent clusters first, with the routine share), so that pollers publishing events in a
  // loop cannot keep the sweep and the due clusters from running.
  bool urgent_batch_last_ = false;
  std::set<std::pair<MonoTime, std::string>> due_queue_;  // (due, cluster), earliest first
  bool ran_as_leader_ = false;                 // whether the last pass ran clusters
  bool member_ok_ = false;  // the last pass had a connected session and a readable membership
  std::map<std::pair<std::string, std::string>, std::uint64_t> cluster_rounds_;
  Millis max_lag_{0};
  // Where the batches' wall time went since `since` (logged as loop_time every kLoopTimeEvery).
  struct LoopTime {
    MonoTime since{};
    std::uint64_t batches = 0;
    std::uint64_t rounds = 0;
    double prefetch_ms = 0;  // PrefetchReads
    double prepare_ms = 0;   // PrepareRound, reads it still made itself included
    double probe_ms = 0;     // ProbeRounds: the probe call and the write-check call
    double finish_ms = 0;    // FinishRound: decide and act (publish, vouch, re-affirm, withdraw)
  };
  LoopTime loop_time_;
  // Re-affirmations the finishing rounds of a batch decided while their voucher was known held
  // (VouchFor): sent together with MultiAsync once every round of the batch finished, and awaited
  // once (SendReaffirmations), instead of one synchronous multi per round.
  struct PendingReaffirm {
    std::string cluster;
    publishers::ZkPublisher::Reaffirmation reaffirmation;
    std::uint64_t verified_at_count = 0;
    MonoTime at{};
  };
  std::vector<PendingReaffirm> reaffirms_;
  void SendReaffirmations();
  void AccountBatch(std::size_t rounds, double prefetch_ms, double prepare_ms, double probe_ms,
                    double finish_ms);
};

}  // namespace pgherald::orchestrator
