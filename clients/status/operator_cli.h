// What the operator's commands over ZooKeeper share (status, history, pause, resume, switchover):
// the connection flags (--config FILE with a zookeeper: section, --zookeeper, --root,
// --connect-timeout-ms), the connection itself with the config's auth and ACL policy, flag
// parsing with --help, and the messages of a failure. Each helper prints its own error to stderr
// as "pgherald <command>: ..." and returns render.h's exit codes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/cli.h"
#include "common/zk/zk_client.h"

namespace pgherald::status {

// The connection flags followed by `extra`.
std::vector<cli::OptionSpec> With(std::vector<cli::OptionSpec> extra);

struct Connection {
  std::unique_ptr<zk::ZkClient> zk;
  std::string root;
  zk::SessionFactory reconnect;  // a new session with the same options (after an expiry)
};

std::optional<std::int64_t> ParseInt(const std::string& text);

// Fills *out, or returns the exit code of the failure (message printed): kExitUsage (bad flag or
// config) or kExitZooKeeper (unreachable).
int Connect(const char* command, const cli::ParsedArgs& args, Connection* out);

// Prints the failure (sanitized) and returns kExitNotFound for kNotFound, else kExitZooKeeper.
int Failure(const char* command, const Status& s);

// Parses the flags; returns -1 to go on, else the exit code (help printed, or usage error). No
// positional argument is accepted.
int ParseFlags(const char* command, const char* summary, const std::vector<std::string>& argv,
               const std::vector<cli::OptionSpec>& specs, cli::ParsedArgs* out);

// "$USER@host (cli)": who wrote a control change, for the other operators.
std::string OperatorIdentity();

}  // namespace pgherald::status
