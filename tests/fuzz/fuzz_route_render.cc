// Fuzz target: the whole path of a master record into the files `pgherald watch` writes:
// payload -> the client library's decode (MasterRecord::FromJson and the MasterInfo it yields, as
// clients/src/master_watch.cc builds it) -> RoutePolicy (route, then unverified -> block) ->
// HAProxy config (haproxy/examples/haproxy.cfg.tmpl with HaproxyTemplateVars) and pgbouncer's
// [databases] file (RenderDatabasesFile).
// Properties: nothing crashes; every rendered file has exactly the template's number of lines
// (a value can never add a line, which in haproxy.cfg would be code: see STACK-NOTES), and the
// pgbouncer file has one line per entry plus its header.
#include <fstream>
#include <iterator>

#include "pgbouncer/pgbouncer_sink.h"
#include "clients/watch/route_policy.h"
#include "common/template.h"
#include "common/base/clock.h"
#include "common/model/cluster_model.h"
#include "haproxy/haproxy_sink_config.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/support/manual_clock.h"

using pgherald::fuzz::AsText;
using pgherald::fuzz::CountLines;
namespace client = pgherald::client;
namespace watch = pgherald::watch;

namespace {

std::string ReadTemplate() {
  const std::string path = PGHERALD_SOURCE_DIR "/haproxy/examples/haproxy.cfg.tmpl";
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FUZZ_CHECK(!text.empty(), "cannot read " + path);
  return text;
}

const pgherald::TemplateVars kExtra = {{"admin_socket", "/run/haproxy/admin.sock"},
                                       {"master_socket", "/run/haproxy/master.sock"},
                                       {"listen", "127.0.0.1:5000"},
                                       {"backend", "pg_primary"},
                                       {"server", "primary"}};

void Render(const watch::RouteTarget& target) {
  static const std::string tmpl = ReadTemplate();
  const auto vars = pgherald::haproxy::HaproxyTemplateVars(target, kExtra);
  auto cfg = pgherald::RenderTemplate(tmpl, vars, "haproxy.cfg.tmpl");
  if (cfg.ok()) {
    FUZZ_CHECK(CountLines(*cfg) == CountLines(tmpl),
               "haproxy.cfg has " + std::to_string(CountLines(*cfg)) + " lines, template " +
                   std::to_string(CountLines(tmpl)) + ":\n" + *cfg);
  }

  watch::PgbouncerSinkConfig pgb;
  pgb.databases_file = "/tmp/unused";
  pgb.entries["app"] = "host={{host}} port={{port}} dbname=app";
  auto file = watch::RenderDatabasesFile(pgb, target);
  if (file.ok()) {
    FUZZ_CHECK(CountLines(*file) == 1 + pgb.entries.size(),
               "databases file has " + std::to_string(CountLines(*file)) + " lines:\n" + *file);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto record = pgherald::model::MasterRecord::FromJson(AsText(data, size));
  if (!record.ok()) return 0;

  // As master_watch.cc turns a record into the state it hands the application.
  client::MasterInfo info;
  info.cluster = "main";
  info.mzxid = 10;
  info.epoch = record->epoch;
  info.vouchers = 1;
  if (record->state == pgherald::model::MasterState::kNoMaster) {
    info.status = client::MasterStatus::kNoMaster;
  } else {
    info.node = record->node;
    info.host = record->host;
    info.port = record->port;
    info.timeline = record->timeline;
    info.status = client::MasterStatus::kVouched;
  }

  pgherald::ManualClock clock;
  watch::PolicyConfig config;
  config.on_unverified = watch::Policy::kBlock;
  config.unverified_grace = pgherald::Millis(100);
  watch::RoutePolicy policy(config, clock);
  if (auto target = policy.OnState(info)) Render(*target);

  info.status =
      info.node.empty() ? client::MasterStatus::kNoMaster : client::MasterStatus::kUnverified;
  info.vouchers = 0;
  info.mzxid = 11;
  if (auto target = policy.OnState(info)) Render(*target);
  clock.Advance(std::chrono::milliseconds(200));
  if (auto target = policy.OnTick()) Render(*target);
  return 0;
}
