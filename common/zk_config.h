// The `zookeeper:` section every daemon reads (config.h's conventions), and the sessions it gives.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/config.h"
#include "common/zk/zk_client.h"

namespace pgherald::config {

struct ZooKeeperConfig {
  std::string connect;              // required: "host:port,host:port[/chroot]"
  std::string root = "/pgherald";   // absolute, no trailing '/'
  Millis session_timeout{6000};     // session_timeout_ms, 1000..600000
  Millis connect_timeout{10000};    // connect_timeout_ms, 100..600000
  // Digest "user:password": a secret, never log it. From `auth_file` (first line of the file,
  // read at parse time with ReadBoundedFile) or, discouraged, inline `auth`; not both.
  std::optional<std::string> auth;
  std::optional<std::string> auth_file;  // the path, for messages
  // Run even when the tree is world-writable although auth is configured (zkacl::JudgeTree).
  bool allow_open_acl = false;
  // Things to log at warn once logging is up (auth_file readable by group/others, inline auth).
  // Never holds a secret.
  std::vector<std::string> warnings;
};
// `tls` is refused: Debian 12's libzookeeper_mt 3.8.0 has no SSL support (docs/security.md).
ZooKeeperConfig ParseZooKeeper(ConfigNode node);
// The ZkClient options of a `zookeeper:` section. With auth, the session authenticates by digest
// and the nodes it creates are creator-all, world-read.
zk::ZkClientOptions ToZkClientOptions(const ZooKeeperConfig& config);
// What every daemon (poller, orchestrator, watch) connects with: ZkClient sessions from
// ToZkClientOptions, each checked by zkacl::GuardedFactory against the tree under config.root for
// `clusters` (a world-writable tree is refused when auth is configured, unless allow_open_acl).
// Logs config.warnings (once, when called). `program` names the daemon in messages.
zk::SessionFactory GuardedZkSessions(const ZooKeeperConfig& config, const std::string& program,
                                     const std::vector<std::string>& clusters);

}  // namespace pgherald::config
