// The HAProxy sink of `pgherald watch`: switches one backend server to the master.
//
// Two parts, both needed (docs/haproxy.md), each its own class:
//  1. At once (Apply, the fast path: RuntimeSwitch, runtime_switch.h), through the runtime API
//     (admin socket), on ONE connection so one worker runs it all, followed by `show info` to
//     learn which worker that was:
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
//  2. Durably (ConfigPersister, config_persister.h), on the sink's own thread after the route is
//     live (never in front of the next route): renders the config from a {{var}} template,
//     validates it with `haproxy -c -f <temp>`, swaps it in (temp file, fsync, rename), so a reload or restart keeps the route, and reloads
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

#include <chrono>
#include <memory>
#include <string>

#include "clients/watch/sink.h"
#include "haproxy/config_persister.h"
#include "haproxy/haproxy_sink_config.h"
#include "haproxy/runtime_switch.h"

namespace pgherald::haproxy {

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
  const HaproxySinkConfig config_;
  RuntimeSwitch runtime_{config_};
  std::unique_ptr<ConfigPersister> persister_;  // null without config_file (runtime API only)
};

}  // namespace pgherald::haproxy
