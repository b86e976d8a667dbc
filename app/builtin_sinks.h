// The sink types `pgherald watch` knows: haproxy, pgbouncer, exec, file (docs/watch.md). The one
// place that names them all; clients/watch knows sinks only through the registry.
#pragma once

#include "clients/watch/sink_registry.h"

namespace pgherald::app {

// Built once; the order is the one config errors list them in.
const watch::SinkRegistry& BuiltinSinks();

}  // namespace pgherald::app
