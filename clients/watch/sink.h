// A sink makes one outside system (HAProxy, pgbouncer, a command, a file) follow the RouteTarget.
// Sinks are plug-ins (sink_registry.h): each lives in its own folder (haproxy/, pgbouncer/,
// sinks/exec/, sinks/file/) and depends on this interface only, never on the watch daemon.
#pragma once

#include <string>

#include "clients/watch/route_policy.h"
#include "common/base/status.h"

namespace pgherald::watch {

// Whether `target`'s master fields may be put into a file or a command line (they come from the
// master znode: untrusted input). A route needs a cluster and a node name (untrusted::IsValidName),
// a host (untrusted::IsValidHost) and a port 1..65535; a block may leave them empty (nothing
// vouched yet) but what it has must be valid too. kInvalidArgument naming the field, its value
// (sanitized) and the rule, and saying that nothing was changed. The HAProxy, pgbouncer and exec
// sinks call it before touching anything.
Status CheckTarget(const RouteTarget& target);

// A valid route (cluster and node "sample", 127.0.0.1:5432) for the sinks' config parsers, which
// render their templates with it at load so that a typo fails at start-up, not at the first
// failover.
RouteTarget SampleRoute();

class Sink {
 public:
  virtual ~Sink() = default;
  // "haproxy", "pgbouncer:main", ...: names the sink in logs and reports.
  virtual const std::string& name() const = 0;
  // Makes the outside world match `target`. Runs on the sink's own worker thread, one call at a
  // time, so implementations need no locking of their own state. Must be idempotent: after a
  // failure the worker calls it again (with the same or a newer target), so a sink remembers what
  // it already applied and redoes only what is missing. Must return within its own timeouts.
  virtual Status Apply(const RouteTarget& target) = 0;
};

}  // namespace pgherald::watch
