#include "common/zk_config.h"

#include <chrono>

#include "common/bounded_file.h"
#include "common/logging.h"
#include "common/zk_acl.h"

namespace pgherald::config {

zk::ZkClientOptions ToZkClientOptions(const ZooKeeperConfig& config) {
  zk::ZkClientOptions options;
  options.connect = config.connect;
  options.session_timeout = config.session_timeout;
  options.connect_timeout = config.connect_timeout;
  // The connect string's names are re-resolved when a connection is lost, not at every wake-up of
  // the C library's I/O thread (its default): at 1,000 clusters that getaddrinfo, with its netlink
  // round trips, took a fifth of the orchestrator's CPU (docs/benchmarks.md, "Scale").
  options.resolve_delay = std::chrono::milliseconds(-1);
  if (config.auth) {
    const auto colon = config.auth->find(':');
    options.auth = zk::ZkDigestAuth{
        config.auth->substr(0, colon),
        colon == std::string::npos ? "" : config.auth->substr(colon + 1)};
    options.acl = zk::ZkAclPolicy::kCreatorAllWorldRead;
  }
  return options;
}

ZooKeeperConfig ParseZooKeeper(ConfigNode node) {
  ZooKeeperConfig c;
  c.connect = node.Required<std::string>("connect");
  if (node.Has("connect") && c.connect.empty()) {
    node.Fail("connect", "expected host:port[,host:port...], got an empty string");
  }
  c.root = node.Optional<std::string>("root", c.root);
  if (c.root.empty() || c.root.front() != '/' || (c.root.size() > 1 && c.root.back() == '/') ||
      c.root.find("//") != std::string::npos) {
    node.Fail("root",
              "expected an absolute znode path without a trailing '/', got " + QuoteValue(c.root));
  }
  c.session_timeout = node.Optional<Millis>("session_timeout_ms", c.session_timeout,
                                            {.min = Millis(1000), .max = Millis(600000)});
  c.connect_timeout = node.Optional<Millis>("connect_timeout_ms", c.connect_timeout,
                                            {.min = Millis(100), .max = Millis(600000)});
  c.auth = node.Optional<std::string>("auth");
  if (c.auth && (c.auth->find(':') == std::string::npos || c.auth->front() == ':')) {
    node.Fail("auth", "expected \"user:password\" (value not shown)");
  }
  c.auth_file = node.Optional<std::string>("auth_file");
  if (c.auth && c.auth_file) {
    node.Fail("auth_file", "set either auth_file or auth, not both (auth_file is preferred)");
  } else if (c.auth) {
    c.warnings.push_back(
        "zookeeper.auth holds the ZooKeeper credential inline in " + node.file() +
        "; move it to a file readable only by this service and set zookeeper.auth_file instead");
  } else if (c.auth_file) {
    auto file = ReadBoundedFile(*c.auth_file, node.path() + ".auth_file", kMaxSecretFileBytes);
    if (!file.ok()) {
      node.Fail("auth_file", file.status().message());
    } else {
      std::string line = file->content.substr(0, file->content.find('\n'));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find(':') == std::string::npos || line.front() == ':') {
        node.Fail("auth_file", "the first line of " + *c.auth_file +
                                   " must be \"user:password\" (content not shown)");
      } else {
        c.auth = std::move(line);
      }
      if (file->group_or_world_readable) {
        c.warnings.push_back("zookeeper.auth_file " + *c.auth_file +
                             " is readable by its group or others; chmod 600 it");
      }
    }
  }
  c.allow_open_acl = node.Optional<bool>("allow_open_acl", false);
  if (node.Has("tls")) {
    (void)node.Child("tls").Keys();  // its keys are not "unknown": the section itself is refused
    node.Fail("tls",
              "TLS to ZooKeeper is not supported: the ZooKeeper C client pgherald links "
              "(Debian 12's libzookeeper_mt 3.8.0) is built without SSL. Remove `tls` and run a "
              "TLS tunnel on loopback instead (stunnel or ghostunnel: connect to 127.0.0.1:<port>, "
              "the tunnel verifies the server's certificate), or build pgherald against a "
              "ZooKeeper C client built with SSL; see docs/security.md");
  }
  return c;
}

zk::SessionFactory GuardedZkSessions(const ZooKeeperConfig& config, const std::string& program,
                                     const std::vector<std::string>& clusters) {
  const log::Logger logger("zookeeper");
  for (const std::string& w : config.warnings) logger.Warn("zk_config_warning", {{"detail", w}});
  zkacl::TreeCheck check;
  check.root = config.root;
  check.clusters = clusters;
  check.auth_configured = config.auth.has_value();
  check.allow_open_acl = config.allow_open_acl;
  check.program = program;
  return zkacl::GuardedFactory(zk::ZkClient::Factory(ToZkClientOptions(config)), std::move(check));
}

}  // namespace pgherald::config
