// The HAProxy sink's settings (the keys of a `type: haproxy` sink, docs/watch.md and
// docs/haproxy.md), their parser (registered by app/ with watch::SinkRegistry) and the template
// variables the config is rendered with.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "clients/watch/sink.h"
#include "common/config.h"
#include "common/template.h"
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
  TemplateVars vars;  // extra template variables (must not shadow the built-in ones)
};

// Reads a `type: haproxy` sink's keys, recording every mistake in `node` (file:line and key):
// backend and server must be names (they go into runtime commands), vars one line each and not
// shadowing a built-in, config_file and template together, master_socket with them, and the
// template must render with a sample route (a typo in a variable fails at start-up).
HaproxySinkConfig ParseHaproxySinkConfig(config::ConfigNode& node);

// The template variables for `target` (built-ins plus `extra`).
TemplateVars HaproxyTemplateVars(const watch::RouteTarget& target, const TemplateVars& extra);
// What each built-in variable may hold (TemplateRules). For a block, cluster, node and host
// may also be empty and port "0" (nothing vouched yet).
TemplateRules HaproxyTemplateRules(watch::RouteTarget::Action action);
// The names of the built-in variables, for config validation.
const std::vector<std::string>& HaproxyBuiltinVars();

}  // namespace pgherald::haproxy
