#include "clients/switchover/switchover_command.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "clients/src/consumer_rules.h"
#include "clients/status/operator_cli.h"
#include "common/model/json_fields.h"
#include "common/model/untrusted.h"
#include "publishers/view/cluster_view.h"

namespace pgherald::switchover {
namespace {

using model::SwitchoverPhase;
using model::SwitchoverRecord;

std::int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Show(const std::string& text) { return untrusted::SanitizeForDisplay(text); }

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

std::string NewId(std::int64_t now_ms) {
  std::random_device rd;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(rd()));
  return "sw-" + std::to_string(now_ms) + "-" + hex;
}

void PrintChecks(const Preflight& p, std::FILE* f) {
  for (const CheckLine& c : p.checks) {
    std::fprintf(f, "%s %s: %s\n", c.ok ? "ok  " : "FAIL", Show(c.subject).c_str(),
                 Show(c.text).c_str());
  }
}

// The result of one run, for the summary.
struct Outcome {
  SwitchoverRecord record;
  std::uint64_t epoch = 0;
  std::int64_t hold_ms = -1;  // hold -> publish (the rejoin phase began), -1: not reached
  std::int64_t elapsed_ms = 0;
  std::string note;  // the coordinator's own word (lost session, record replaced)
};

std::string ResultName(const SwitchoverRecord& r) {
  return model::IsTerminal(r.phase) ? model::SwitchoverPhaseName(r.phase) : "unknown";
}

int PrintSummary(const Outcome& o, int code, const RunOptions& options, std::FILE* out) {
  const SwitchoverRecord& r = o.record;
  if (options.json) {
    jsonf::json j = {{"id", r.id},          {"cluster", options.cluster},
                     {"result", ResultName(r)}, {"phase", model::SwitchoverPhaseName(r.phase)},
                     {"from", r.from},      {"to", r.to},
                     {"epoch", o.epoch},    {"hold_ms", o.hold_ms},
                     {"elapsed_ms", o.elapsed_ms}, {"exit_code", code}};
    if (!r.error.empty()) j["error"] = r.error;
    if (!o.note.empty()) j["note"] = o.note;
    std::fprintf(out, "%s\n", jsonf::Dump(j).c_str());
    return code;
  }
  std::fprintf(out, "switchover %s: result=%s from=%s to=%s epoch=%llu hold_ms=%lld elapsed_ms=%lld\n",
               r.id.c_str(), ResultName(r).c_str(), r.from.c_str(), r.to.c_str(),
               static_cast<unsigned long long>(o.epoch), static_cast<long long>(o.hold_ms),
               static_cast<long long>(o.elapsed_ms));
  if (!r.error.empty()) std::fprintf(out, "error: %s\n", Show(r.error).c_str());
  if (!o.note.empty()) std::fprintf(out, "note: %s\n", Show(o.note).c_str());
  return code;
}

}  // namespace

// ---- Wakeup ----

struct Wakeup::State {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> armed;
  bool fired = false;
};

Wakeup::Wakeup() : state_(std::make_shared<State>()) {}

zk::Watcher Wakeup::Arm(const std::string& key) {
  std::lock_guard<std::mutex> lock(state_->mu);
  if (!state_->armed.insert(key).second) return nullptr;
  std::weak_ptr<State> weak = state_;
  return [weak, key](const zk::WatchEvent&) {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard<std::mutex> l(s->mu);
    s->armed.erase(key);
    s->fired = true;
    s->cv.notify_all();
  };
}

zk::StateListener Wakeup::OnStateChange() {
  std::weak_ptr<State> weak = state_;
  return [weak](zk::SessionState, std::int64_t) {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard<std::mutex> l(s->mu);
    s->fired = true;
    s->cv.notify_all();
  };
}

void Wakeup::Disarm(const std::string& key) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->armed.erase(key);
}

void Wakeup::Reset() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->armed.clear();
}

void Wakeup::WaitFor(std::int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait_for(lock, std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0)),
                      [this] { return state_->fired; });
  state_->fired = false;
}

// ---- reading ----

StatusOr<ClusterSnapshot> ReadSnapshot(zk::ZkSession& zk, const model::ClusterPaths& paths,
                                       Wakeup* wake) {
  // Each read arms its one-shot watch unless it is still pending; a failed read leaves none.
  auto watched = [wake](const std::string& key, auto call) {
    zk::Watcher w = wake != nullptr ? wake->Arm(key) : nullptr;
    auto r = call(w);
    if (!r.ok() && w) wake->Disarm(key);
    return r;
  };
  auto get = [&](const std::string& path) {
    return watched("data:" + path, [&](zk::Watcher w) { return zk.Get(path, std::move(w)); });
  };
  auto exists = [&](const std::string& path) {
    return watched("data:" + path, [&](zk::Watcher w) { return zk.Exists(path, std::move(w)); });
  };
  auto children = [&](const std::string& path) {
    return watched("children:" + path,
                   [&](zk::Watcher w) { return zk.GetChildren(path, std::move(w)); });
  };
  ClusterSnapshot snap;
  PGH_ASSIGN_OR_RETURN(const std::optional<zk::Stat> cluster, zk.Exists(paths.Cluster()));
  if (!cluster) {
    return NotFound("cluster \"" + paths.cluster() + "\" not found (no " + paths.Cluster() +
                    "); `pgherald status` lists the clusters");
  }

  // The master: data, then children (never older than the data), judged by consumer_rules.
  client::internal::MasterRead read;
  auto master = get(paths.Master());
  if (master.ok()) {
    read.exists = true;
    read.data = master->data;
    read.stat = master->stat;
    auto listed = children(paths.Master());
    if (!listed.ok() && listed.status().code() != StatusCode::kNotFound) {
      return listed.status();
    }
    if (listed.ok()) read.children = *listed;
  } else if (master.status().code() == StatusCode::kNotFound) {
    PGH_RETURN_IF_ERROR(exists(paths.Master()).status());
  } else {
    return master.status();
  }
  const client::internal::Judgement judged = client::internal::JudgeRead(read);
  snap.master = judged.record;
  snap.master_bound = judged.kind == client::internal::Judgement::Kind::kBound;
  if (judged.kind == client::internal::Judgement::Kind::kUnreadable) {
    snap.master_error = judged.error.message();
  } else if (judged.kind == client::internal::Judgement::Kind::kAbsent) {
    snap.master_error = "no master znode";
  }

  auto control = zk.Get(paths.Control());
  if (control.ok()) {
    if (!control->data.empty()) {
      auto parsed = model::ParseControl(control->data);
      if (parsed.ok()) {
        snap.control = *parsed;
      } else {
        snap.control_error = parsed.status().message();
      }
    }
  } else if (control.status().code() != StatusCode::kNotFound) {
    return control.status();
  }

  auto record = get(paths.Switchover());
  if (record.ok()) {
    snap.record_znode_version = record->stat.version;
    auto parsed = SwitchoverRecord::FromJson(record->data);
    if (parsed.ok()) {
      snap.record = *parsed;
      snap.record->version = record->stat.version;
    } else {
      snap.record_error = parsed.status().message();
    }
  } else if (record.status().code() == StatusCode::kNotFound) {
    PGH_RETURN_IF_ERROR(exists(paths.Switchover()).status());
  } else {
    return record.status();
  }

  auto names = children(paths.Nodes());
  if (!names.ok() && names.status().code() != StatusCode::kNotFound) return names.status();
  if (names.ok() && names->size() > view::kMaxNodesRead) {
    // A flood (anyone who may write under nodes/): nothing is read, and nothing is switched.
    snap.bad_nodes.push_back("nodes/ holds " + std::to_string(names->size()) +
                             " znodes, more than " + std::to_string(view::kMaxNodesRead) +
                             " (none read)");
  } else if (names.ok()) {
    for (const std::string& name : *names) {
      const std::string path = paths.Node(name);
      auto node = get(path);
      if (!node.ok()) {
        if (node.status().code() == StatusCode::kNotFound) continue;  // its poller just left
        return node.status();
      }
      if (node->stat.ephemeral_owner == 0) {
        snap.bad_nodes.push_back(name + ": a persistent znode (no live poller wrote it)");
        continue;
      }
      auto obs = model::NodeObservation::FromZnode(name, node->data);
      if (!obs.ok()) {
        snap.bad_nodes.push_back(name + ": " + obs.status().message());
        continue;
      }
      snap.nodes.emplace(name, std::move(*obs));
    }
  }
  return snap;
}

// ---- the run ----

int RunSwitchover(zk::ZkSession& zk, const RunOptions& options, std::FILE* out,
                  std::FILE* err) {
  const auto now_ms = options.now_ms ? options.now_ms : std::function<std::int64_t()>(SystemNowMs);
  std::FILE* info = options.json ? err : out;  // with --json only the summary goes to `out`
  const model::ClusterPaths paths(options.root, options.cluster);
  auto first = ReadSnapshot(zk, paths, nullptr);
  if (!first.ok()) {
    std::fprintf(err, "pgherald switchover: %s\n", Show(first.status().message()).c_str());
    return kExitRefused;
  }
  PreflightOptions pre_options;
  pre_options.to = options.to;
  pre_options.max_lag_bytes = options.max_lag_bytes;
  const Preflight pre = RunPreflight(*first, pre_options, now_ms());
  PrintChecks(pre, info);
  if (options.dry_run || !pre.ok()) {
    if (pre.ok()) {
      std::fprintf(info, "plan (from %s to %s, max hold %lld ms, deadline %lld ms):\n",
                   pre.from.c_str(), pre.to.c_str(), static_cast<long long>(options.max_hold_ms),
                   static_cast<long long>(options.timeout_ms));
      for (const PlanStep& step : Plan(pre.from, pre.to, pre.siblings)) {
        std::fprintf(info, "  %-8s by=%s: %s\n", model::SwitchoverPhaseName(step.phase),
                     JoinNames(step.actors).c_str(), Show(step.action).c_str());
      }
    }
    if (options.json) {
      jsonf::json checks = jsonf::json::array();
      for (const CheckLine& c : pre.checks) {
        checks.push_back({{"ok", c.ok}, {"subject", c.subject}, {"text", c.text}});
      }
      jsonf::json j = {{"cluster", options.cluster},
                       {"result", pre.ok() ? "ready" : "refused"},
                       {"from", pre.from},
                       {"to", pre.to},
                       {"siblings", pre.siblings},
                       {"checks", checks},
                       {"exit_code", pre.ok() ? kExitDone : kExitRefused}};
      std::fprintf(out, "%s\n", jsonf::Dump(j).c_str());
    }
    if (!pre.ok()) {
      std::fprintf(err, "pgherald switchover: refused; nothing was written\n");
      return kExitRefused;
    }
    return kExitDone;
  }

  // Create the record (replacing a terminal, expired or corrupt one by its version).
  const std::int64_t start = now_ms();
  SwitchoverRecord record;
  record.id = NewId(start);
  record.from = pre.from;
  record.to = pre.to;
  record.siblings = pre.siblings;
  record.phase = SwitchoverPhase::kPrepare;
  record.base_epoch = pre.base_epoch;
  record.max_hold_ms = options.max_hold_ms;
  record.started_at_ms = start;
  record.phase_at_ms = start;
  record.deadline_at_ms = start + options.timeout_ms;
  record.requested_by = options.requested_by;
  if (first->record_znode_version < 0) {
    // The record lives under control, which exists once zk-init ran or someone paused the
    // cluster; on a tree nobody laid out, create it as `pgherald pause` would (not paused).
    Status parent = zk.Create(paths.Control(), model::ControlToJson(model::ControlState{}),
                              zk::CreateMode::kPersistent)
                        .status();
    if (!parent.ok() && parent.code() != StatusCode::kAlreadyExists) {
      std::fprintf(err, "pgherald switchover: cannot create %s: %s\n", paths.Control().c_str(),
                   Show(parent.message()).c_str());
      return kExitRefused;
    }
  }
  Status created = first->record_znode_version < 0
                       ? zk.Create(paths.Switchover(), record.ToJson(), zk::CreateMode::kPersistent)
                             .status()
                       : zk.Set(paths.Switchover(), record.ToJson(), first->record_znode_version)
                             .status();
  if (!created.ok() && created.code() != StatusCode::kConnectionLoss) {
    std::fprintf(err, "pgherald switchover: cannot write %s: %s%s\n", paths.Switchover().c_str(),
                 Show(created.message()).c_str(),
                 created.code() == StatusCode::kAlreadyExists ||
                         created.code() == StatusCode::kBadVersion
                     ? " (another switchover started meanwhile; see pgherald status)"
                     : "");
    return kExitRefused;
  }
  // On connection loss the create may have been applied: the loop reads and finds out.

  Outcome outcome;
  outcome.record = record;
  std::map<SwitchoverPhase, std::int64_t> began;
  auto print_phase = [&](const SwitchoverRecord& r) {
    began[r.phase] = r.phase_at_ms;
    std::fprintf(info, "phase=%s elapsed_ms=%lld by=%s\n", model::SwitchoverPhaseName(r.phase),
                 static_cast<long long>(r.phase_at_ms - r.started_at_ms),
                 JoinNames(ActorsOf(r, r.phase)).c_str());
    std::fflush(info);
  };
  print_phase(record);

  CoordinatorOptions machine;
  machine.step_timeout_ms = options.step_timeout_ms;
  machine.withdraw_timeout_ms = options.withdraw_timeout_ms;
  Wakeup wake;
  SwitchoverPhase last_printed = record.phase;
  bool seen_ours = false;
  std::string read_error;
  int code = kExitFailed;
  zk::ZkSession* session = &zk;
  std::unique_ptr<zk::ZkSession> replacement;  // after an expiry
  session->SetStateListener(wake.OnStateChange());
  for (;;) {
    auto snap = ReadSnapshot(*session, paths, &wake);
    const std::int64_t now = now_ms();
    if (!snap.ok()) {
      if (zk::IsFinal(session->state())) {
        if (!options.reconnect || now > record.deadline_at_ms) {
          outcome.note = "lost the ZooKeeper session (" + snap.status().message() +
                         "); the record stays in force until its deadline: pgherald switchover "
                         "--abort ends it now";
          break;
        }
        auto fresh = options.reconnect();
        if (fresh.ok()) {
          std::fprintf(err, "pgherald switchover: the ZooKeeper session ended (%s); going on in "
                            "a new one\n", Show(snap.status().message()).c_str());
          replacement = std::move(*fresh);
          session = replacement.get();
          session->SetStateListener(wake.OnStateChange());
          wake.Reset();
          continue;
        }
        snap = fresh.status();  // reported below; retried after the poll interval
      }
      if (read_error != snap.status().message()) {
        read_error = snap.status().message();
        std::fprintf(err, "pgherald switchover: reading ZooKeeper: %s (retrying)\n",
                     Show(read_error).c_str());
      }
      if (now > record.deadline_at_ms + options.poll_ms) {
        outcome.note = "ZooKeeper unreadable past the deadline: " + read_error;
        break;
      }
      wake.WaitFor(options.poll_ms);
      continue;
    }
    read_error.clear();
    if (snap->master) outcome.epoch = snap->master->epoch;
    if (!snap->record || snap->record->id != record.id) {
      if (!seen_ours && created.code() == StatusCode::kConnectionLoss) {
        // The create's outcome was unknown; a read after it does not show it: not applied.
        outcome.note = "the record was not created (connection loss); nothing was started";
        code = kExitRefused;
        break;
      }
      outcome.note = "the switchover record was replaced or deleted by someone else (" +
                     (snap->record ? "now " + snap->record->id : std::string("absent")) + ")";
      break;
    }
    seen_ours = true;
    record = *snap->record;
    outcome.record = record;
    if (record.phase != last_printed) {  // moved by someone else (an operator's --abort)
      print_phase(record);
      last_printed = record.phase;
    }
    CoordinatorInput input;
    input.record = record;
    input.nodes = snap->nodes;
    input.master = snap->master;
    input.master_bound = snap->master_bound;
    input.now_ms = now;
    const CoordinatorStep step = Advance(input, machine);
    if (step.kind == CoordinatorStep::Kind::kFinished) {
      code = step.exit_code;
      break;
    }
    if (step.kind == CoordinatorStep::Kind::kWait) {
      wake.WaitFor(std::min(std::max<std::int64_t>(step.wake_at_ms - now, 1), options.poll_ms));
      continue;
    }
    auto set = session->Set(paths.Switchover(), step.record.ToJson(), record.version);
    if (set.ok()) {
      record = step.record;
      record.version = set->version;
      outcome.record = record;
      print_phase(record);
      last_printed = record.phase;
    }
    // Otherwise (someone else wrote, or the outcome is unknown): read and decide again.
  }
  outcome.elapsed_ms = now_ms() - start;
  if (began.count(SwitchoverPhase::kHold) && began.count(SwitchoverPhase::kRejoin)) {
    outcome.hold_ms = began[SwitchoverPhase::kRejoin] - began[SwitchoverPhase::kHold];
  }
  return PrintSummary(outcome, code, options, out);
}

int RunAbort(zk::ZkSession& zk, const RunOptions& options, std::FILE* out, std::FILE* err) {
  const auto now_ms = options.now_ms ? options.now_ms : std::function<std::int64_t()>(SystemNowMs);
  const model::ClusterPaths paths(options.root, options.cluster);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto snap = ReadSnapshot(zk, paths, nullptr);
    if (!snap.ok()) {
      std::fprintf(err, "pgherald switchover --abort: %s\n", Show(snap.status().message()).c_str());
      return kExitRefused;
    }
    const std::int64_t now = now_ms();
    if (!snap->record || !model::SwitchoverActive(*snap->record, now)) {
      std::fprintf(err, "pgherald switchover --abort: no active switchover on cluster %s%s\n",
                   options.cluster.c_str(),
                   snap->record ? (" (the last, " + snap->record->id + ", ended " +
                                   model::SwitchoverPhaseName(snap->record->phase) +
                                   (IsTerminal(snap->record->phase) ? ")" : ", expired)"))
                                      .c_str()
                                : "");
      return kExitRefused;
    }
    SwitchoverRecord next = *snap->record;
    const SwitchoverPhase was = next.phase;
    next.phase = SwitchoverPhase::kAborted;
    next.phase_at_ms = now;
    const std::string why = "aborted by " + options.requested_by + " in phase " +
                            model::SwitchoverPhaseName(was);
    next.error = next.error.empty() ? why : next.error + "; " + why;
    auto set = zk.Set(paths.Switchover(), next.ToJson(), snap->record->version);
    if (set.status().code() == StatusCode::kBadVersion) continue;  // it moved: look again
    if (!set.ok()) {
      std::fprintf(err, "pgherald switchover --abort: %s\n", Show(set.status().message()).c_str());
      return kExitRefused;
    }
    std::fprintf(out, "switchover %s (%s -> %s) was in phase %s; marked aborted: the owner vouches "
                      "again, the pollers act on it no more\n",
                 next.id.c_str(), next.from.c_str(), next.to.c_str(),
                 model::SwitchoverPhaseName(was));
    if (was != SwitchoverPhase::kPrepare && was != SwitchoverPhase::kHold) {
      std::fprintf(out, "check the nodes (pgherald status): %s may be stopped or rejoining, %s "
                        "promoted; repmgrd may stay paused (repmgr service unpause)\n",
                   next.from.c_str(), next.to.c_str());
    } else {
      std::fprintf(out, "repmgrd may stay paused: repmgr -f CONF service unpause on %s\n",
                   next.to.c_str());
    }
    return kExitDone;
  }
  std::fprintf(err, "pgherald switchover --abort: the record keeps changing; try again\n");
  return kExitRefused;
}

int RunSwitchoverCommand(const std::vector<std::string>& argv) {
  static const char kCommand[] = "switchover";
  const auto specs = status::With({
      {"cluster", "NAME", "the cluster (required)"},
      {"to", "NODE", "the standby to promote (default: the streaming standby with the smallest lag)"},
      {"max-hold-ms", "MS", "the longest consumers may be held before the stop (default 2000)"},
      {"timeout-ms", "MS", "the whole switchover's deadline (default 120000)"},
      {"step-timeout-ms", "MS", "each acknowledged step and the publish (default 60000)"},
      {"max-lag-bytes", "N", "the target's largest lag behind the primary (default 16777216)"},
      {"dry-run", "", "print the checks and the plan, write nothing"},
      {"abort", "", "mark the active switchover aborted"},
      {"json", "", "print the summary as one JSON object"},
  });
  cli::ParsedArgs args;
  if (int rc = status::ParseFlags(
          kCommand,
          "Switch the primary over to a standby without SSH: the pollers stop, promote, rejoin "
          "and follow on their nodes, coordinated through ZooKeeper (docs/switchover.md). Exit "
          "codes: 0 done, 1 refused (nothing written), 2 aborted or failed.",
          argv, specs, &args);
      rc >= 0) {
    return rc == 0 ? kExitDone : kExitRefused;
  }
  RunOptions options;
  options.cluster = args.Get("cluster").value_or("");
  if (options.cluster.empty() || !untrusted::IsValidName(options.cluster)) {
    std::fprintf(stderr, "pgherald switchover: --cluster NAME is required (a valid name)\n");
    return kExitRefused;
  }
  options.to = args.Get("to").value_or("");
  if (!options.to.empty() && !untrusted::IsValidName(options.to)) {
    std::fprintf(stderr, "pgherald switchover: --to: \"%s\" is not a valid node name\n",
                 Show(options.to).c_str());
    return kExitRefused;
  }
  struct Bound {
    const char* flag;
    std::int64_t min, max;
    std::int64_t* into;
  };
  std::int64_t max_lag = static_cast<std::int64_t>(options.max_lag_bytes);
  for (const Bound& b : {Bound{"max-hold-ms", 1, 3600000, &options.max_hold_ms},
                         Bound{"timeout-ms", 1000, 86400000, &options.timeout_ms},
                         Bound{"step-timeout-ms", 100, 86400000, &options.step_timeout_ms},
                         Bound{"max-lag-bytes", 0, std::int64_t{1} << 50, &max_lag}}) {
    auto text = args.Get(b.flag);
    if (!text) continue;
    auto v = status::ParseInt(*text);
    if (!v || *v < b.min || *v > b.max) {
      std::fprintf(stderr, "pgherald switchover: --%s: expected an integer %lld..%lld, got \"%s\"\n",
                   b.flag, static_cast<long long>(b.min), static_cast<long long>(b.max),
                   Show(*text).c_str());
      return kExitRefused;
    }
    *b.into = *v;
  }
  options.max_lag_bytes = static_cast<std::uint64_t>(max_lag);
  options.dry_run = args.Has("dry-run");
  options.json = args.Has("json");
  options.requested_by = status::OperatorIdentity();
  status::Connection conn;
  if (status::Connect(kCommand, args, &conn) != 0) return kExitRefused;
  options.root = conn.root;
  options.reconnect = conn.reconnect;
  if (args.Has("abort")) return RunAbort(*conn.zk, options, stdout, stderr);
  return RunSwitchover(*conn.zk, options, stdout, stderr);
}

}  // namespace pgherald::switchover
