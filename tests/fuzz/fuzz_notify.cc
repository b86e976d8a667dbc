// Fuzz target: what `pgherald notify` hands the poller (pollers/notify.h): the datagram decoder
// (any local process that can write to the socket may send one) and the argument parser
// (repmgr's placeholders %n %e %s %t %d, split here at '\n').
// Properties: nothing crashes; an accepted datagram round-trips through Encode; its node_id is
// the one written (never silently wrapped); the fact it becomes has a safe znode name and
// round-trips through RepmgrEvent's codec.
#include <nlohmann/json.hpp>

#include "pollers/notify.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;

namespace {

void CheckMessage(const pgherald::pollers::NotifyMessage& m) {
  auto back = pgherald::pollers::NotifyMessage::Decode(m.Encode());
  FUZZ_CHECK(back.ok(), "Encode wrote what Decode rejects: " + m.Encode());
  const auto same = [](const auto& a, const auto& b) {
    return a.node_id == b.node_id && a.event == b.event && a.successful == b.successful &&
           a.timestamp == b.timestamp && a.details == b.details;
  };
  // Encode writes invalid UTF-8 (repmgr's %e/%d can be any bytes) as U+FFFD, as the payload
  // codecs do: exact for valid text, and a fixed point after one encoding in any case.
  using pgherald::fuzz::IsValidUtf8;
  if (IsValidUtf8(m.event) && IsValidUtf8(m.timestamp) && IsValidUtf8(m.details)) {
    FUZZ_CHECK(same(*back, m), "Decode(Encode(m)) != m: " + m.Encode());
  }
  auto again = pgherald::pollers::NotifyMessage::Decode(back->Encode());
  FUZZ_CHECK(again.ok() && same(*again, *back), "Encode is not a fixed point: " + back->Encode());
  const auto event = m.ToEvent(1'700'000'000'000'000);
  const std::string name = event.ZnodeName();
  FUZZ_CHECK(
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
          std::string::npos,
      "unsafe znode name " + name);
  auto fact = pgherald::pollers::RepmgrEvent::FromJson(event.ToJson());
  FUZZ_CHECK(fact.ok(), "the fact's JSON is rejected: " + event.ToJson());
  FUZZ_CHECK(*fact == event || !IsValidUtf8(m.event) || !IsValidUtf8(m.timestamp) ||
                 !IsValidUtf8(m.details),
             "the fact does not round-trip: " + event.ToJson());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = AsText(data, size);
  if (auto m = pgherald::pollers::NotifyMessage::Decode(text); m.ok()) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    FUZZ_CHECK(
        j["node_id"].get<std::int64_t>() == m->node_id &&
            !(j["node_id"].is_number_unsigned() && j["node_id"].get<std::uint64_t>() > 2147483647u),
        "node_id " + j["node_id"].dump() + " read as " + std::to_string(m->node_id));
    CheckMessage(*m);
  }
  std::vector<std::string> args;
  std::size_t start = 0;
  while (start <= text.size() && args.size() < 8) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    args.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  if (auto m = pgherald::pollers::ParseNotifyArgs(args); m.ok()) CheckMessage(*m);
  return 0;
}
