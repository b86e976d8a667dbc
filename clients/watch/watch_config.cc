#include "clients/watch/watch_config.h"

#include <optional>
#include <set>

#include "common/pg_config.h"
#include "common/model/untrusted.h"

namespace pgherald::watch {
namespace {

// `hold` is offered for on_unverified only (route_policy.h: a disconnected watch knows nothing of
// the master).
Policy ParsePolicy(config::ConfigNode& node, const char* key, bool hold_allowed) {
  const std::string policy =
      hold_allowed ? node.OptionalOneOf(key, "keep", {"keep", "block", "hold"})
                   : node.OptionalOneOf(key, "keep", {"keep", "block"});
  if (policy == "block") return Policy::kBlock;
  if (policy == "hold") return Policy::kHold;
  return Policy::kKeep;
}

}  // namespace

StatusOr<WatchConfig> LoadWatchConfig(const std::string& path, const SinkRegistry& sinks) {
  auto root = config::ConfigNode::LoadFile(path);
  if (!root.ok()) return root.status();
  return ParseWatchConfig(*root, sinks);
}

StatusOr<WatchConfig> ParseWatchConfig(config::ConfigNode root, const SinkRegistry& sinks) {
  WatchConfig out;
  out.zookeeper = config::ParseZooKeeper(root.Child("zookeeper"));
  out.logging = config::ParseLogging(root.Child("logging"));
  out.http = http::ParseOptionalListen(root);
  config::ConfigNode watch = root.Child("watch");
  // Master states always come from the client library (its built-in second watcher is gone):
  // `source: library` is accepted as it changes nothing, anything else is refused.
  if (std::optional<std::string> source = watch.Optional<std::string>("source")) {
    if (*source != "library") {
      watch.Fail("source", "\"" + untrusted::SanitizeForDisplay(*source, 80) +
                               "\" is not supported: remove it: watch always uses the client "
                               "library");
    }
  }
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
    cluster.policy.on_unverified = ParsePolicy(cn, "on_unverified", /*hold_allowed=*/true);
    cluster.policy.unverified_grace =
        cn.Optional<Millis>("unverified_grace_ms", Millis(5000), {.min = Millis(0), .max = Millis(3600000)});
    cluster.policy.max_hold =
        cn.Optional<Millis>("max_hold_ms", Millis(10000), {.min = Millis(0), .max = Millis(600000)});
    cluster.policy.on_disconnect = ParsePolicy(cn, "on_disconnect", /*hold_allowed=*/false);
    cluster.policy.disconnect_grace =
        cn.Optional<Millis>("disconnect_grace_ms", Millis(10000), {.min = Millis(0), .max = Millis(3600000)});
    cluster.retry.initial =
        cn.Optional<Millis>("retry_initial_ms", Millis(200), {.min = Millis(1), .max = Millis(600000)});
    cluster.retry.max =
        cn.Optional<Millis>("retry_max_ms", Millis(10000), {.min = Millis(1), .max = Millis(3600000)});
    if (cluster.retry.max < cluster.retry.initial) {
      cn.Fail("retry_max_ms", "must be at least retry_initial_ms");
    }
    std::vector<config::ConfigNode> sink_nodes = cn.List("sinks");
    if (sink_nodes.empty()) cn.Fail("sinks", "missing or empty: give the cluster at least one sink");
    std::set<std::string> names;
    for (config::ConfigNode& sn : sink_nodes) {
      const std::string type = sn.OptionalOneOf("type", "", sinks.types());
      std::optional<SinkConfig> sink = sinks.Parse(type, sn);
      if (!sink.has_value()) {
        if (!sn.Has("type")) sn.Fail("type", "missing: one of " + sinks.TypeList());
        continue;
      }
      if (!names.insert(sink->name).second) {
        sn.Fail("name", "two sinks of cluster " + name + " are called \"" + sink->name +
                            "\": give each a distinct name");
      }
      cluster.sinks.push_back(std::move(*sink));
    }
    out.clusters.push_back(std::move(cluster));
  }
  if (Status s = root.Finish(); !s.ok()) return s;
  return out;
}

}  // namespace pgherald::watch
