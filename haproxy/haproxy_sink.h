// The HAProxy sink of `pgherald watch`: switches one backend server to the master.
//
// Two parts, both needed (docs/haproxy.md):
//  1. At once, through the runtime API (admin socket):
//       route: set server B/S addr H port P; set server B/S state ready; set server B/S health up
//              (after an addr change the server stays DOWN until a check passes: health up skips
//              the wait); shutdown sessions server B/S when the address changed (sessions glued to
//              the old master are cut). With a master socket, the cut goes to every worker listed
//              by `show proc` (`@!<pid> shutdown sessions ...`): old workers left by reloads keep
//              their sessions and the admin socket does not reach them.
//       block: set server B/S state maint; shutdown sessions server B/S. New connections are then
//              refused (no usable server) and existing ones are cut.
//  2. Durably: renders the config from a {{var}} template, validates the result with
//     `haproxy -c -f <temp>`, swaps it in (temp file, fsync, rename) and reloads HAProxy through
//     its master socket, so a reload or restart keeps the route. A template that does not render or
//     a config that haproxy rejects is reported (naming the template and haproxy's complaint), the
//     temporary file is removed and the running config stays untouched.
//
// Template variables: cluster, node, host, port, epoch, timeline, status, action (route|block),
// server_state ("" when routing, "disabled" when blocked: put it after the server line's options),
// plus the sink's `vars`.
#pragma once

#include <optional>
#include <string>

#include "clients/watch/sink.h"
#include "clients/watch/template.h"
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
  watch::TemplateVars vars;    // extra template variables (must not shadow the built-in ones)
};

// The template variables for `target` (built-ins plus `extra`).
watch::TemplateVars HaproxyTemplateVars(const watch::RouteTarget& target,
                                        const watch::TemplateVars& extra);
// The names of the built-in variables, for config validation.
const std::vector<std::string>& HaproxyBuiltinVars();

class HaproxySink final : public watch::Sink {
 public:
  explicit HaproxySink(HaproxySinkConfig config) : config_(std::move(config)) {}
  const std::string& name() const override { return config_.name; }
  Status Apply(const watch::RouteTarget& target) override;

 private:
  struct Runtime {
    watch::RouteTarget::Action action;
    std::string host;
    int port;
    bool operator==(const Runtime&) const = default;
  };
  Status ApplyRuntime(const watch::RouteTarget& target);
  Status ApplyConfig(const watch::RouteTarget& target);

  const HaproxySinkConfig config_;
  std::optional<Runtime> runtime_applied_;
  bool pending_shutdown_ = false;  // the address changed but the sessions are not cut yet
  std::optional<std::string> config_applied_;  // the content last swapped in
};

}  // namespace pgherald::haproxy
