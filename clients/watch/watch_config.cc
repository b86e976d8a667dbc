#include "clients/watch/watch_config.h"

#include <algorithm>
#include <set>

#include "clients/watch/template.h"
#include "common/pg_config.h"
#include "common/untrusted.h"

namespace pgherald::watch {
namespace {

Policy ParsePolicy(config::ConfigNode& node, const char* key) {
  return node.OptionalOneOf(key, "keep", {"keep", "block"}) == "block" ? Policy::kBlock
                                                                       : Policy::kKeep;
}

void ParseHaproxy(config::ConfigNode& n, haproxy::HaproxySinkConfig* c) {
  c->name = n.Optional<std::string>("name", "haproxy");
  c->admin_socket = n.Required<std::string>("admin_socket");
  c->server.backend = n.Required<std::string>("backend");
  c->server.server = n.Required<std::string>("server");
  c->shutdown_sessions = n.Optional<bool>("shutdown_sessions", true);
  c->command_timeout = n.Optional<Millis>("command_timeout_ms", Millis(2000),
                                          {.min = Millis(10), .max = Millis(60000)});
  c->config_file = n.Optional<std::string>("config_file", "");
  c->template_file = n.Optional<std::string>("template", "");
  c->master_socket = n.Optional<std::string>("master_socket", "");
  c->haproxy_bin = n.Optional<std::string>("haproxy_bin", "haproxy");
  c->validate_timeout = n.Optional<Millis>("validate_timeout_ms", Millis(10000),
                                           {.min = Millis(100), .max = Millis(600000)});
  c->vars = n.Optional<std::map<std::string, std::string>>("vars", {});
  // Both go into runtime commands (`set server B/S ...`, `;`-separated batches).
  for (const char* key : {"backend", "server"}) {
    const std::string& value = std::string(key) == "backend" ? c->server.backend : c->server.server;
    if (n.Has(key) && !untrusted::IsValidName(value)) {
      n.Fail(key, "\"" + untrusted::SanitizeForDisplay(value, 80) +
                      "\" is not a valid name: it must be " + untrusted::kNameRule);
    }
  }
  for (const auto& [key, value] : c->vars) {
    if (!untrusted::IsPrintableText(value)) {
      n.Fail("vars", "\"" + key +
                         "\" holds a control character (a newline would add a line to "
                         "the config); write it on one line");
    }
  }
  if (c->config_file.empty() != c->template_file.empty()) {
    n.Fail(c->config_file.empty() ? "template" : "config_file",
           "set both config_file and template (the config is rendered from the template), or "
           "neither (runtime API only)");
  }
  if (!c->config_file.empty() && c->master_socket.empty()) {
    n.Fail("master_socket",
           "missing: with config_file set, HAProxy is reloaded through its master socket "
           "(haproxy -W -S <path>); set master_socket to that path");
  }
  for (const auto& builtin : haproxy::HaproxyBuiltinVars()) {
    if (c->vars.count(builtin) > 0) {
      n.Fail("vars", "\"" + builtin + "\" is a built-in template variable; rename it");
    }
  }
  if (!c->template_file.empty()) {
    RouteTarget sample;
    sample.master.cluster = "sample";
    sample.master.node = "sample";
    sample.master.host = "127.0.0.1";
    sample.master.port = 5432;
    auto rendered =
        RenderTemplateFile(c->template_file, haproxy::HaproxyTemplateVars(sample, c->vars),
                           haproxy::HaproxyTemplateRules(sample.action));
    if (!rendered.ok()) n.Fail("template", rendered.status().message());
  }
}

void ParsePgbouncer(config::ConfigNode& n, PgbouncerSinkConfig* c) {
  c->name = n.Optional<std::string>("name", "pgbouncer");
  c->databases_file = n.Required<std::string>("databases_file");
  if (n.Has("entries")) {
    c->entries = n.Optional<std::map<std::string, std::string>>("entries", {});
    if (c->entries.empty()) n.Fail("entries", "empty: name at least one database");
    for (const auto& [db, value] : c->entries) {
      if (db != "*" && !untrusted::IsValidName(db)) {
        n.Fail("entries", "database name \"" + untrusted::SanitizeForDisplay(db, 80) +
                              "\" must be \"*\" or " + untrusted::kNameRule);
      }
      if (!untrusted::IsPrintableText(value)) {
        n.Fail("entries", "entry \"" + db + "\" holds a control character; write it on one line");
      }
    }
  }
  config::ConfigNode admin = n.Child("admin");
  if (!admin.present()) {
    n.Fail("admin", "missing: the admin console, e.g. {host: 127.0.0.1, port: 6432, user: pgbouncer}");
  } else {
    const bool has_db = admin.Has("dbname");
    config::PostgresConfig pc = config::ParsePostgres(admin);
    if (!has_db) pc.dbname = "pgbouncer";
    auto params = config::ToPgParams(pc);
    if (!params.ok()) {
      admin.Fail("password_file", params.status().message());
    } else {
      c->admin = *params;
    }
  }
  c->databases = n.Optional<std::vector<std::string>>("databases", {});
  c->pause_timeout = n.Optional<Millis>("pause_timeout_ms", Millis(5000),
                                        {.min = Millis(10), .max = Millis(600000)});
  c->kill_old = n.Optional<bool>("kill_old", false);
  c->kill_on_pause_timeout = n.Optional<bool>("kill_on_pause_timeout", true);
  RouteTarget sample;
  sample.master.cluster = "sample";
  sample.master.node = "sample";
  sample.master.host = "127.0.0.1";
  sample.master.port = 5432;
  auto rendered = RenderDatabasesFile(*c, sample);
  if (!rendered.ok()) n.Fail("entries", rendered.status().message());
}

}  // namespace

StatusOr<WatchConfig> LoadWatchConfig(const std::string& path) {
  auto root = config::ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParseWatchConfig(*root);
}

StatusOr<WatchConfig> ParseWatchConfig(config::ConfigNode root) {
  WatchConfig out;
  out.zookeeper = config::ParseZooKeeper(root.Child("zookeeper"));
  out.logging = config::ParseLogging(root.Child("logging"));
  out.http = http::ParseOptionalListen(root);
  config::ConfigNode watch = root.Child("watch");
  out.source = watch.OptionalOneOf("source", "library", {"library", "internal"});
  config::ConfigNode clusters = watch.Child("clusters");
  if (!watch.present()) {
    root.Fail("watch", "missing: the section naming the clusters to follow and their sinks");
  } else if (!clusters.present()) {
    watch.Fail("clusters", "missing: a map of cluster name to {sinks: [...]}");
  }
  for (const std::string& name : clusters.Keys()) {
    config::ConfigNode cn = clusters.Child(name);
    ClusterWatchConfig cluster;
    cluster.name = name;
    cluster.policy.on_unverified = ParsePolicy(cn, "on_unverified");
    cluster.policy.unverified_grace =
        cn.Optional<Millis>("unverified_grace_ms", Millis(5000), {.min = Millis(0), .max = Millis(3600000)});
    cluster.policy.on_disconnect = ParsePolicy(cn, "on_disconnect");
    cluster.policy.disconnect_grace =
        cn.Optional<Millis>("disconnect_grace_ms", Millis(10000), {.min = Millis(0), .max = Millis(3600000)});
    cluster.retry.initial =
        cn.Optional<Millis>("retry_initial_ms", Millis(200), {.min = Millis(1), .max = Millis(600000)});
    cluster.retry.max =
        cn.Optional<Millis>("retry_max_ms", Millis(10000), {.min = Millis(1), .max = Millis(3600000)});
    if (cluster.retry.max < cluster.retry.initial) {
      cn.Fail("retry_max_ms", "must be at least retry_initial_ms");
    }
    std::vector<config::ConfigNode> sinks = cn.List("sinks");
    if (sinks.empty()) cn.Fail("sinks", "missing or empty: give the cluster at least one sink");
    std::set<std::string> names;
    for (config::ConfigNode& sn : sinks) {
      SinkConfig sink;
      sink.type = sn.OptionalOneOf("type", "", {"haproxy", "pgbouncer", "exec", "file"});
      std::string sink_name;
      if (sink.type == "haproxy") {
        ParseHaproxy(sn, &sink.haproxy);
        sink_name = sink.haproxy.name;
      } else if (sink.type == "pgbouncer") {
        ParsePgbouncer(sn, &sink.pgbouncer);
        sink_name = sink.pgbouncer.name;
      } else if (sink.type == "exec") {
        sink.exec.name = sn.Optional<std::string>("name", "exec");
        sink.exec.command = sn.Required<std::vector<std::string>>("command");
        if (sn.Has("command") && sink.exec.command.empty()) {
          sn.Fail("command", "empty: give the program and its arguments, e.g. [/usr/local/bin/x]");
        }
        sink.exec.timeout = sn.Optional<Millis>("timeout_ms", Millis(10000),
                                                {.min = Millis(1), .max = Millis(3600000)});
        sink_name = sink.exec.name;
      } else if (sink.type == "file") {
        sink.file.name = sn.Optional<std::string>("name", "file");
        sink.file.path = sn.Required<std::string>("path");
        sink_name = sink.file.name;
      } else {
        if (!sn.Has("type")) sn.Fail("type", "missing: one of haproxy, pgbouncer, exec, file");
        continue;
      }
      if (!names.insert(sink_name).second) {
        sn.Fail("name", "two sinks of cluster " + name + " are called \"" + sink_name +
                            "\": give each a distinct name");
      }
      cluster.sinks.push_back(std::move(sink));
    }
    out.clusters.push_back(std::move(cluster));
  }
  if (Status s = root.Finish(); !s.ok()) return s;
  return out;
}

std::unique_ptr<Sink> MakeSink(const SinkConfig& config) {
  if (config.type == "haproxy") return std::make_unique<haproxy::HaproxySink>(config.haproxy);
  if (config.type == "pgbouncer") return std::make_unique<PgbouncerSink>(config.pgbouncer);
  if (config.type == "exec") return std::make_unique<ExecSink>(config.exec);
  return std::make_unique<FileSink>(config.file);
}

}  // namespace pgherald::watch
