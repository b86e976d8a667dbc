#include "haproxy/haproxy_sink_config.h"

#include "common/model/untrusted.h"

namespace pgherald::haproxy {

using watch::RouteTarget;

const std::vector<std::string>& HaproxyBuiltinVars() {
  static const std::vector<std::string> names = {
      "cluster", "node", "host", "port", "epoch", "timeline", "status", "action", "server_state"};
  return names;
}

TemplateVars HaproxyTemplateVars(const RouteTarget& target, const TemplateVars& extra) {
  TemplateVars vars = extra;
  vars["cluster"] = target.master.cluster;
  vars["node"] = target.master.node;
  vars["host"] = target.master.host;
  vars["port"] = std::to_string(target.master.port);
  vars["epoch"] = std::to_string(target.master.epoch);
  vars["timeline"] = std::to_string(target.master.timeline);
  vars["status"] = watch::StatusName(target.status);
  vars["action"] = watch::ActionName(target.action);
  vars["server_state"] = target.action == RouteTarget::Action::kBlock ? "disabled" : "";
  return vars;
}

namespace {

bool EmptyOrName(std::string_view v) { return v.empty() || untrusted::IsValidName(v); }
bool EmptyOrHost(std::string_view v) { return v.empty() || untrusted::IsValidHost(v); }

}  // namespace

TemplateRules HaproxyTemplateRules(RouteTarget::Action action) {
  TemplateRules rules = {
      {"cluster", NameValue()}, {"node", NameValue()},    {"host", HostValue()},
      {"port", PortValue()},    {"epoch", NumberValue()}, {"timeline", NumberValue()},
      {"status", WordValue()},  {"action", WordValue()},  {"server_state", WordValue()}};
  if (action == RouteTarget::Action::kBlock) {
    rules["cluster"] = {untrusted::kNameRule, EmptyOrName};
    rules["node"] = {untrusted::kNameRule, EmptyOrName};
    rules["host"] = {untrusted::kHostRule, EmptyOrHost};
    rules["port"] = {"a port number, 1-65535, or 0", NumberValue().allows};
  }
  return rules;
}

HaproxySinkConfig ParseHaproxySinkConfig(config::ConfigNode& n) {
  HaproxySinkConfig c;
  c.name = n.Optional<std::string>("name", "haproxy");
  c.admin_socket = n.Required<std::string>("admin_socket");
  c.server.backend = n.Required<std::string>("backend");
  c.server.server = n.Required<std::string>("server");
  c.shutdown_sessions = n.Optional<bool>("shutdown_sessions", true);
  c.command_timeout = n.Optional<Millis>("command_timeout_ms", Millis(2000),
                                         {.min = Millis(10), .max = Millis(60000)});
  c.config_file = n.Optional<std::string>("config_file", "");
  c.template_file = n.Optional<std::string>("template", "");
  c.master_socket = n.Optional<std::string>("master_socket", "");
  c.haproxy_bin = n.Optional<std::string>("haproxy_bin", "haproxy");
  c.validate_timeout = n.Optional<Millis>("validate_timeout_ms", Millis(10000),
                                          {.min = Millis(100), .max = Millis(600000)});
  c.vars = n.Optional<std::map<std::string, std::string>>("vars", {});
  // Both go into runtime commands (`set server B/S ...`, `;`-separated batches).
  for (const char* key : {"backend", "server"}) {
    const std::string& value = std::string(key) == "backend" ? c.server.backend : c.server.server;
    if (n.Has(key) && !untrusted::IsValidName(value)) {
      n.Fail(key, "\"" + untrusted::SanitizeForDisplay(value, 80) +
                      "\" is not a valid name: it must be " + untrusted::kNameRule);
    }
  }
  for (const auto& [key, value] : c.vars) {
    if (!untrusted::IsPrintableText(value)) {
      n.Fail("vars", "\"" + key +
                         "\" holds a control character (a newline would add a line to "
                         "the config); write it on one line");
    }
  }
  if (c.config_file.empty() != c.template_file.empty()) {
    n.Fail(c.config_file.empty() ? "template" : "config_file",
           "set both config_file and template (the config is rendered from the template), or "
           "neither (runtime API only)");
  }
  if (!c.config_file.empty() && c.master_socket.empty()) {
    n.Fail("master_socket",
           "missing: with config_file set, HAProxy is reloaded through its master socket "
           "(haproxy -W -S <path>); set master_socket to that path");
  }
  for (const auto& builtin : HaproxyBuiltinVars()) {
    if (c.vars.count(builtin) > 0) {
      n.Fail("vars", "\"" + builtin + "\" is a built-in template variable; rename it");
    }
  }
  if (!c.template_file.empty()) {
    const watch::RouteTarget sample = watch::SampleRoute();
    auto rendered = RenderTemplateFile(c.template_file, HaproxyTemplateVars(sample, c.vars),
                                       HaproxyTemplateRules(sample.action));
    if (!rendered.ok()) n.Fail("template", rendered.status().message());
  }
  return c;
}

}  // namespace pgherald::haproxy
