// HAProxy's CLI over a unix stream socket: the runtime API (`stats socket ... level admin`) and
// the master CLI (`-S <socket>` in master-worker mode). Non-interactive use: one connection per
// command, the command and "\n" are sent, and HAProxy closes the connection after its answer.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace pgherald::haproxy {

// Sends `command` to the socket at `socket_path` and returns HAProxy's whole answer. kUnavailable
// when the socket cannot be reached (naming it), kTimeout when no complete answer came in time,
// kInvalidArgument (nothing sent) when `command` holds a newline or another control character:
// HAProxy would run what follows as another command.
StatusOr<std::string> SendCommand(const std::string& socket_path, const std::string& command,
                                  std::chrono::milliseconds timeout);

// SendCommand, retried every millisecond for up to `window` while the socket refuses connections
// (kUnavailable: the master CLI does while a reload is in flight); the last answer otherwise.
StatusOr<std::string> SendCommandRetrying(const std::string& socket_path,
                                          const std::string& command,
                                          std::chrono::milliseconds window,
                                          std::chrono::milliseconds timeout);

// The runtime commands the sink issues, in order. Exposed so tests can check the exact sequence.
struct ServerRef {
  std::string backend;
  std::string server;
  std::string Name() const { return backend + "/" + server; }
};

// `set server B/S addr H port P`, built only from checked values: kInvalidArgument (naming the
// culprit) unless B and S are names (untrusted::IsValidName), H is a host (untrusted::IsValidHost:
// no ';', space or newline can reach the command line) and P is 1..65535.
StatusOr<std::string> SetAddrCommand(const ServerRef& ref, const std::string& host, int port);

// `set server B/S addr H port P`: HAProxy answers "IP changed from ..." / "no need to change ...";
// anything else (e.g. "No such server.") is an error naming the server and quoting the answer.
// Returns whether the address or port actually changed (HAProxy said "changed from").
StatusOr<bool> SetServerAddr(const std::string& socket, const ServerRef& ref, const std::string& host,
                     int port, std::chrono::milliseconds timeout);
// The answer to `set server ... addr ...` (`command`), as SetServerAddr judges it.
StatusOr<bool> ParseSetAddrAnswer(const std::string& command, const std::string& answer);

// `commands` followed by `show info`, sent on ONE connection as one `;`-separated line, so a single
// HAProxy process runs them all: during a reload the old and the new worker both accept on the
// admin socket, and the caller must know which one it talked to.
struct BatchAnswer {
  std::vector<std::string> answers;  // one per command, trimmed ("" for a silent success)
  std::string pid;                   // `show info` Pid: the worker that ran the commands
  bool stopping = false;             // `show info` Stopping: an old worker on its way out
};
// kUnavailable when the socket cannot be reached or the connection closed before `show info`
// answered (an exiting worker): both are worth retrying at once. kTimeout as SendCommand.
// kInvalidArgument, nothing sent, when a command holds ';' or a control character (it would add
// commands to the batch).
StatusOr<BatchAnswer> SendBatch(const std::string& socket_path,
                                const std::vector<std::string>& commands,
                                std::chrono::milliseconds timeout);

// The parsers of HAProxy's answers, apart from the socket so they can be tested and fuzzed
// (tests/fuzz/fuzz_haproxy_answers.cc). Each takes the raw answer as HAProxy sent it.
//
// SendBatch's reading of `commands_count` answers (each ended by an empty line) followed by
// `show info`; nullopt when the answer is incomplete (fewer answers, or no Pid).
std::optional<BatchAnswer> ParseBatchAnswer(std::size_t commands_count, const std::string& raw);
// The worker PIDs of the master CLI's `show proc` (lines "<pid> worker ..."), current and old, in
// the order listed. Lines of other types (master, program) and malformed lines are skipped.
std::vector<std::string> ParseShowProc(const std::string& answer);
// The ids of the sessions of `ref` in a worker's `show sess` (lines "0x55d4...: proto=... be=B
// srv=S ..."). Only ids of the form 0x<hex> are returned: an id goes back into a command.
std::vector<std::string> ParseShowSessIds(const std::string& answer, const ServerRef& ref);

// Commands whose success is an empty answer: `set server B/S state ready|maint`,
// `set server B/S health up`, `shutdown sessions server B/S`.
Status RunSilentCommand(const std::string& socket, const std::string& command,
                        std::chrono::milliseconds timeout);

}  // namespace pgherald::haproxy
