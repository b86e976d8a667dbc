#include "pollers/poller_config.h"

#include <cstdlib>

namespace pgherald::pollers {
namespace {

StatusOr<PollerConfig> Parse(config::ConfigNode root) {
  PollerConfig c;
  c.zookeeper = config::ParseZooKeeper(root.Child("zookeeper"));
  c.logging = config::ParseLogging(root.Child("logging"));
  c.http = http::ParseOptionalListen(root);
  c.postgres = config::ParsePostgres(root.Child("postgres"));

  config::ConfigNode p = root.Child("poller");
  if (!p.present()) p.Fail("", "missing required section \"poller\" (cluster, node, ...)");
  PollerSection& s = c.poller;
  s.cluster = p.Required<std::string>("cluster");
  s.node = p.Required<std::string>("node");
  for (const auto& [key, value] : {std::pair{"cluster", &s.cluster}, std::pair{"node", &s.node}}) {
    if (value->find('/') != std::string::npos) {
      p.Fail(key, "must not contain '/' (it is a znode name)");
    }
  }
  s.host = p.Optional<std::string>("host", c.postgres.host);
  s.port = p.Optional<int>("port", c.postgres.port, {.min = 1, .max = 65535});
  s.repmgr_node_id = p.Optional<int>("repmgr_node_id");
  if (s.repmgr_node_id && *s.repmgr_node_id < 1) {
    p.Fail("repmgr_node_id", "expected a repmgr node id >= 1");
  }
  s.repmgr3_schema = p.Optional<std::string>("repmgr3_schema", "");
  s.tick = p.Optional<Millis>("tick_ms", Millis(1000), {.min = Millis(50), .max = Millis(600000)});
  s.heartbeat = p.Optional<Millis>("heartbeat_ms", std::max(Millis(3000), s.tick),
                                   {.min = Millis(50), .max = Millis(600000)});
  if (s.heartbeat < s.tick) p.Fail("heartbeat_ms", "must be at least tick_ms");
  s.notify_socket = p.Optional<std::string>("notify_socket", "");
  const std::string mode = p.Optional<std::string>("notify_socket_mode", "0660");
  char* end = nullptr;
  const long parsed = std::strtol(mode.c_str(), &end, 8);
  if (mode.empty() || *end != '\0' || parsed < 0 || parsed > 0777) {
    p.Fail("notify_socket_mode", "expected an octal file mode such as \"0660\" (quote it)");
  } else {
    s.notify_socket_mode = static_cast<int>(parsed);
  }
  s.events_retention = p.Optional<int>("events_retention", 1000, {.min = 10, .max = 100000});
  s.backoff_max = p.Optional<Millis>("backoff_max_ms", Millis(10000),
                                     {.min = Millis(100), .max = Millis(600000)});
  s.promotion_watch = p.Optional<Millis>("promotion_watch_ms", Millis(120000),
                                         {.min = Millis(0), .max = Millis(3600000)});
  s.promotion_poll = p.Optional<Millis>("promotion_poll_ms", Millis(5),
                                        {.min = Millis(1), .max = Millis(1000)});

  config::ConfigNode f = p.Child("fence");
  const std::string action = f.OptionalOneOf("action", "report", {"report", "stop", "command"});
  s.fence.action = action == "stop"      ? FenceAction::kStop
                   : action == "command" ? FenceAction::kCommand
                                         : FenceAction::kReport;
  s.fence.command = f.Optional<std::string>("command", "");
  s.fence.data_dir = f.Optional<std::string>("data_dir", "");
  s.fence.pg_ctl = f.Optional<std::string>("pg_ctl", s.fence.pg_ctl);
  s.fence.timeout = f.Optional<Millis>("timeout_ms", Millis(30000),
                                       {.min = Millis(100), .max = Millis(600000)});
  s.fence.on_zookeeper_loss = f.Optional<bool>("on_zookeeper_loss", true);
  s.fence.self_fence_deadline = f.Optional<Millis>("self_fence_deadline_ms", Millis(30000),
                                                   {.min = Millis(1000), .max = Millis(3600000)});
  if (s.fence.action == FenceAction::kCommand && s.fence.command.empty()) {
    f.Fail("command", "fence action \"command\" needs fence.command (run through /bin/sh)");
  }
  if (s.fence.action == FenceAction::kStop && s.fence.command.empty() &&
      s.fence.data_dir.empty()) {
    f.Fail("data_dir",
           "fence action \"stop\" needs fence.data_dir (the PostgreSQL data directory to stop) "
           "or fence.command");
  }

  config::ConfigNode w = p.Child("switchover");
  SwitchoverConfig& sw = s.switchover;
  sw.enabled = w.Optional<bool>("enabled", false);
  sw.repmgr = w.Optional<std::string>("repmgr", sw.repmgr);
  sw.repmgr_conf = w.Optional<std::string>("repmgr_conf", "");
  sw.config_archive_dir = w.Optional<std::string>("config_archive_dir", sw.config_archive_dir);
  sw.step_timeout = w.Optional<Millis>("step_timeout_ms", Millis(60000),
                                       {.min = Millis(1000), .max = Millis(3600000)});
  sw.drain_timeout = w.Optional<Millis>("drain_timeout_ms", Millis(5000),
                                        {.min = Millis(0), .max = Millis(600000)});
  sw.drain_quiet = w.Optional<Millis>("drain_quiet_ms", Millis(200),
                                      {.min = Millis(0), .max = Millis(60000)});
  if (sw.enabled && sw.repmgr_conf.empty()) {
    w.Fail("repmgr_conf",
           "poller.switchover.enabled needs poller.switchover.repmgr_conf (the repmgr.conf of "
           "this node, passed to repmgr -f)");
  }
  // Paths go into argv as separate words, but a leading '-' would read as an option.
  for (const auto& [key, value] : {std::pair{"repmgr", &sw.repmgr},
                                   std::pair{"repmgr_conf", &sw.repmgr_conf},
                                   std::pair{"config_archive_dir", &sw.config_archive_dir}}) {
    if (!value->empty() && value->front() != '/') {
      w.Fail(key, "expected an absolute path (starting with '/')");
    }
  }
  if (sw.enabled && sw.config_archive_dir.empty()) {
    w.Fail("config_archive_dir", "must not be empty when poller.switchover.enabled is true");
  }
  if (sw.drain_quiet > sw.drain_timeout) {
    w.Fail("drain_quiet_ms", "must not exceed poller.switchover.drain_timeout_ms");
  }
  PGH_RETURN_IF_ERROR(root.Finish());
  return c;
}

}  // namespace

const char* FenceActionName(FenceAction action) {
  switch (action) {
    case FenceAction::kReport: return "report";
    case FenceAction::kStop: return "stop";
    case FenceAction::kCommand: return "command";
  }
  return "report";
}

StatusOr<PollerConfig> LoadPollerConfig(const std::string& path) {
  PGH_ASSIGN_OR_RETURN(const config::ConfigNode root, config::ConfigNode::LoadFile(path));
  return Parse(root);
}

StatusOr<PollerConfig> ParsePollerConfig(std::string_view yaml, const std::string& file_name) {
  PGH_ASSIGN_OR_RETURN(const config::ConfigNode root, config::ConfigNode::LoadString(yaml, file_name));
  return Parse(root);
}

}  // namespace pgherald::pollers
