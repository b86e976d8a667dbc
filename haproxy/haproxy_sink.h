// The HAProxy sink of `pgherald watch`: switches one backend server to the master.
//
// Two parts, both needed (docs/haproxy.md):
//  1. At once (Apply, the fast path), through the runtime API (admin socket), on ONE connection so
//     one worker runs it all, followed by `show info` to learn which worker that was:
//       route: set server B/S addr H port P; set server B/S state ready; set server B/S health up
//              (after an addr change the server stays DOWN until a check passes: health up skips
//              the wait).
//       block: set server B/S state maint.
//     A refused or closed admin socket, or an answer from a worker known to be replaced by a
//     reload (or reporting Stopping), is retried at once for up to command_timeout, not failed
//     into the worker's backoff. Then the sessions still glued to the old master are cut
//     (`shutdown sessions server B/S`; always when blocking, else when the address changed): in
//     the current worker through the admin socket, and in every other worker listed by the master
//     CLI's `show proc` (`@!<pid> ...`: old workers left by reloads keep their sessions and the
//     admin socket does not reach them). A cut that fails does not undo or delay the route: Apply
//     reports it and the retry redoes only the cut.
//  2. Durably, on the sink's own thread after the route is live (never in front of the next
//     route): renders the config from a {{var}} template, validates it with `haproxy -c -f <temp>`,
//     swaps it in (temp file, fsync, rename), so a reload or restart keeps the route, and reloads
//     HAProxy through its master socket reload_delay later (changes within it share the reload).
//     A rendered config equal to the file on disk is neither written nor reloaded. After a reload
//     it waits for the new worker on the admin socket and applies the latest runtime state to it: a
//     change that arrived while the reload was in flight went to the old worker, and the new one
//     parsed the file as it was. Only the latest target is persisted (latest wins). A template that
//     does not render or a config that haproxy rejects is logged and reported by the next Apply
//     calls (naming the template and haproxy's complaint), retried with backoff, the temporary file
//     is removed and the running config stays.
//
// Template variables: cluster, node, host, port, epoch, timeline, status, action (route|block),
// server_state ("" when routing, "disabled" when blocked: put it after the server line's options),
// plus the sink's `vars`.
//
// Untrusted input (docs/haproxy.md, "What reaches HAProxy"): anything written into haproxy.cfg is
// code (HAProxy's master runs a `program` section after a reload, and `haproxy -c` accepts it), and
// the runtime API runs each `;`-separated command. So Apply first checks the target
// (watch::CheckTarget: node and cluster names, host, port) and refuses it, touching nothing, when
// a field is invalid; runtime commands are built only from those checked values (SetAddrCommand)
// and from backend/server names checked at config load; the template renders each variable only
// when it matches its rule (HaproxyTemplateRules) and the rendered config has exactly the
// template's lines. The config file is replaced with common/atomic_file.h (owner and mode kept;
// 0600 when new).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "clients/watch/sink.h"
#include "clients/watch/template.h"
#include "common/logging.h"
#include "haproxy/runtime_api.h"

namespace pgherald::haproxy {

struct HaproxySinkConfig {
  std::string name = "haproxy";
  std::string admin_socket;    // required: the runtime API socket (level admin)
  ServerRef server;            // required: backend and server
  bool shutdown_sessions = true;
  std::chrono::milliseconds command_timeout{2000};
  // The durable part; all empty to use the runtime API only.
  std::string config_file;     // the file haproxy runs with (-f)
  std::string template_file;   // the {{var}} template it is rendered from
  std::string master_socket;   // the master CLI (-S), for `reload`
  std::string haproxy_bin = "haproxy";
  std::chrono::milliseconds validate_timeout{10000};
  // From swapping a changed config in to reloading HAProxy (the runtime API already routes, and
  // the file on disk already names the target): keeps the reload away from the reconnections
  // that follow a switch. Changes within the delay share one reload.
  std::chrono::milliseconds reload_delay{1000};
  // After `reload`: how long the new worker may take to answer on the admin socket.
  std::chrono::milliseconds reload_timeout{10000};
  // Retry of a failed config step (render, validate, swap, reload): doubling, capped.
  std::chrono::milliseconds config_retry_initial{200};
  std::chrono::milliseconds config_retry_max{10000};
  watch::TemplateVars vars;    // extra template variables (must not shadow the built-in ones)
};

// The template variables for `target` (built-ins plus `extra`).
watch::TemplateVars HaproxyTemplateVars(const watch::RouteTarget& target,
                                        const watch::TemplateVars& extra);
// What each built-in variable may hold (watch::TemplateRules). For a block, cluster, node and host
// may also be empty and port "0" (nothing vouched yet).
watch::TemplateRules HaproxyTemplateRules(watch::RouteTarget::Action action);
// The names of the built-in variables, for config validation.
const std::vector<std::string>& HaproxyBuiltinVars();

class HaproxySink final : public watch::Sink {
 public:
  explicit HaproxySink(HaproxySinkConfig config);
  // Stops the config thread after its current step (a reload wait ends at once).
  ~HaproxySink() override;
  HaproxySink(const HaproxySink&) = delete;
  HaproxySink& operator=(const HaproxySink&) = delete;

  const std::string& name() const override { return config_.name; }
  // The fast path (see above); hands the target to the config thread and returns without waiting
  // for it. Fails when the route could not be applied, when the cut failed (the route is live), or
  // when the config thread's latest attempt failed (the route is live; the config thread retries).
  Status Apply(const watch::RouteTarget& target) override;

  // Waits until the config thread has made an attempt for every target handed to it so far and
  // returns that attempt's outcome (kTimeout if it did not within `timeout`). For tests and tools.
  Status WaitConfigSettled(std::chrono::milliseconds timeout);

 private:
  struct Runtime {
    watch::RouteTarget::Action action;
    std::string host;
    int port;
    bool operator==(const Runtime&) const = default;
  };
  struct Worker {
    std::string pid;
    bool changed = false;  // the server's address changed there (its sessions need a cut)
  };
  // Applies `want` on the admin socket, retrying refused/closed sockets and retired or stopping
  // workers until command_timeout. Requires runtime_mu_.
  StatusOr<Worker> ApplyToWorkerLocked(const Runtime& want);
  // `shutdown sessions server B/S` through the admin socket, in the first current worker that
  // answers (retrying as above); returns its pid. Requires runtime_mu_.
  StatusOr<std::string> CutInCurrentWorkerLocked();
  // Through the master CLI, in every worker but the current one: the runtime state (when
  // pending_old_route_) and the cut (when pending_cut_, skipping pending_cut_done_pid_).
  Status OtherWorkersStep(const Runtime& want, const std::string& current_pid);
  // Built from checked values only (SetAddrCommand); kInvalidArgument otherwise.
  StatusOr<std::vector<std::string>> RuntimeCommands(const Runtime& want) const;
  bool IsRetiredLocked(const std::string& pid) const;

  // The config thread.
  void ConfigLoop();
  // Renders, validates, swaps and reloads; whether the file was written (and HAProxy reloaded).
  StatusOr<bool> PersistConfig(const watch::RouteTarget& target);
  Status ReloadAndReapply();

  const HaproxySinkConfig config_;
  const log::Logger log_{"watch"};

  // Runtime state. runtime_mu_ serialises every runtime command of Apply and of the config
  // thread's re-apply after a reload, so the last one sent always carries latest_.
  std::mutex runtime_mu_;
  std::optional<Runtime> latest_;          // the state every worker must have
  std::optional<Runtime> applied_;         // what applied_pid_ has
  std::string applied_pid_;
  std::deque<std::string> retired_pids_;   // workers replaced by a reload (bounded)

  // Apply thread only.
  bool pending_old_route_ = false;         // old workers may lack the applied state
  bool pending_cut_ = false;               // the address changed (or blocked) but the cut failed
  std::string pending_cut_done_pid_;       // the worker already cut ("" none)

  // Config thread hand-off.
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<watch::RouteTarget> next_;  // guarded by mu_: the latest target not yet taken
  std::uint64_t handed_ = 0;                // guarded by mu_: targets handed over
  std::uint64_t settled_ = 0;               // guarded by mu_: handed_ as of the last attempt
  Status config_status_;                    // guarded by mu_: the last attempt's outcome
  bool stop_ = false;                       // guarded by mu_
  std::atomic<bool> stopping_{false};       // stop_, for the config thread's polling loops
  bool reload_pending_ = false;             // config thread only: swapped but not reloaded
  std::chrono::steady_clock::time_point reload_due_;  // config thread only
  std::thread config_thread_;
};

}  // namespace pgherald::haproxy
