// Fuzz target: the repmgr event facts of clusters/<c>/events/<id> (pollers/observation.h
// RepmgrEvent) and the timestamp and LSN text they carry.
// Properties: nothing crashes; an accepted fact round-trips through ToJson; its integers are the
// ones written (never silently wrapped: 4294967297 is not node 1); ZnodeName() is a safe znode
// name (only [A-Za-z0-9_.-] after the "e-" prefix).
#include <nlohmann/json.hpp>

#include "common/model/cluster_model.h"
#include "pollers/observation.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;

namespace {

bool SafeZnodeName(const std::string& name) {
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return name.rfind("e-", 0) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = AsText(data, size);
  // The text fields are parsed too: a fact's timestamp, and LSNs elsewhere.
  (void)pgherald::pollers::ParseRepmgrTimestamp(text);
  if (auto lsn = pgherald::model::ParseLsn(text); lsn.ok()) {
    FUZZ_CHECK(pgherald::model::ParseLsn(pgherald::model::FormatLsn(*lsn)).value() == *lsn,
               "FormatLsn/ParseLsn disagree");
  }

  auto event = pgherald::pollers::RepmgrEvent::FromJson(text);
  if (!event.ok()) return 0;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  FUZZ_CHECK(
      j["node_id"].get<std::int64_t>() == event->key.node_id && j["node_id"].is_number_integer(),
      "node_id " + j["node_id"].dump() + " read as " + std::to_string(event->key.node_id));
  FUZZ_CHECK(!j["ts_us"].is_number_unsigned() ||
                 j["ts_us"].get<std::uint64_t>() == static_cast<std::uint64_t>(event->key.ts_us),
             "ts_us " + j["ts_us"].dump() + " read as " + std::to_string(event->key.ts_us));
  FUZZ_CHECK(SafeZnodeName(event->ZnodeName()), "unsafe znode name " + event->ZnodeName());
  (void)pgherald::pollers::ParseRepmgrTimestamp(event->timestamp);
  const std::string again = event->ToJson();
  auto back = pgherald::pollers::RepmgrEvent::FromJson(again);
  FUZZ_CHECK(back.ok() && *back == *event, "round trip changed the fact: " + again);
  return 0;
}
