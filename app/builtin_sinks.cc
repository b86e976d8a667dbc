#include "app/builtin_sinks.h"

#include "haproxy/haproxy_sink.h"
#include "pgbouncer/pgbouncer_sink.h"
#include "sinks/exec/exec_sink.h"
#include "sinks/file/file_sink.h"

namespace pgherald::app {

const watch::SinkRegistry& BuiltinSinks() {
  static const watch::SinkRegistry registry = [] {
    watch::SinkRegistry r;
    r.Register<haproxy::HaproxySink>("haproxy", &haproxy::ParseHaproxySinkConfig);
    r.Register<watch::PgbouncerSink>("pgbouncer", &watch::ParsePgbouncerSinkConfig);
    r.Register<watch::ExecSink>("exec", &watch::ParseExecSinkConfig);
    r.Register<watch::FileSink>("file", &watch::ParseFileSinkConfig);
    return r;
  }();
  return registry;
}

}  // namespace pgherald::app
