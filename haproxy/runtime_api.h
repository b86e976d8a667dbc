// HAProxy's CLI over a unix stream socket: the runtime API (`stats socket ... level admin`) and
// the master CLI (`-S <socket>` in master-worker mode). Non-interactive use: one connection per
// command, the command and "\n" are sent, and HAProxy closes the connection after its answer.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace pgherald::haproxy {

// Sends `command` to the socket at `socket_path` and returns HAProxy's whole answer. kUnavailable
// when the socket cannot be reached (naming it), kTimeout when no complete answer came in time.
StatusOr<std::string> SendCommand(const std::string& socket_path, const std::string& command,
                                  std::chrono::milliseconds timeout);

// The runtime commands the sink issues, in order. Exposed so tests can check the exact sequence.
struct ServerRef {
  std::string backend;
  std::string server;
  std::string Name() const { return backend + "/" + server; }
};

// `set server B/S addr H port P`: HAProxy answers "IP changed from ..." / "no need to change ...";
// anything else (e.g. "No such server.") is an error naming the server and quoting the answer.
// Returns whether the address or port actually changed (HAProxy said "changed from").
StatusOr<bool> SetServerAddr(const std::string& socket, const ServerRef& ref, const std::string& host,
                     int port, std::chrono::milliseconds timeout);
// Commands whose success is an empty answer: `set server B/S state ready|maint`,
// `set server B/S health up`, `shutdown sessions server B/S`.
Status RunSilentCommand(const std::string& socket, const std::string& command,
                        std::chrono::milliseconds timeout);

}  // namespace pgherald::haproxy
