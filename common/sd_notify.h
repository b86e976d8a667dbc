// systemd's service notification protocol (sd_notify(3)) without libsystemd: one datagram of
// newline-separated "KEY=value" assignments to the AF_UNIX socket named by $NOTIFY_SOCKET. A
// name beginning with '@' is in the abstract namespace (the '@' becomes a NUL byte); any other
// name must be an absolute path. Under a unit with Type=notify, systemd holds the service in
// "activating" until READY=1 arrives (docs/install.md says when each daemon sends it).
#pragma once

#include <functional>
#include <mutex>
#include <set>
#include <string>

#include "common/base/status.h"

namespace pgherald::sdnotify {

// Sends `state` (e.g. "READY=1\nSTATUS=serving") to the socket named by $NOTIFY_SOCKET. Returns ok
// without sending anything when the variable is unset or empty (not started by systemd). An
// invalid name or a failed send is an error that names the socket; the caller logs it and goes
// on: a daemon never stops because systemd cannot be told.
Status Notify(const std::string& state);

// Sends `state` to `socket` ("/path" or "@abstract"). Never blocks: the send is non-blocking and a
// full socket buffer is an error.
Status NotifyTo(const std::string& socket, const std::string& state);

// Sends READY=1 once every named part has been marked up, exactly once per object, whatever the
// order, repetition or thread of the MarkUp calls. A daemon names what must be serving before
// systemd may call it started: its ZooKeeper session, or one part per cluster it follows.
class Readiness {
 public:
  using Sender = std::function<Status(const std::string& state)>;

  // With no `parts`, the first MarkUp sends. `status`, when not empty, goes with READY=1 as
  // STATUS=<status> (what `systemctl status` shows). `send` defaults to Notify.
  explicit Readiness(std::set<std::string> parts, std::string status = "", Sender send = Notify);

  // Marks `part` up; sends READY=1 when it was the last one missing. Returns the send's Status
  // when it sent, ok otherwise (also for a part that is not one of `parts`, which is ignored).
  Status MarkUp(const std::string& part);
  bool ready() const;

 private:
  mutable std::mutex mu_;
  std::set<std::string> missing_;
  bool sent_ = false;
  std::string status_;
  Sender send_;
};

}  // namespace pgherald::sdnotify
