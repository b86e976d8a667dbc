// The round-trip property every payload codec of common/model/cluster_model.h promises (its header):
// FromJson never throws and never crashes; what it accepts, ToJson writes back so that FromJson
// reads the same value again, and writing that value gives the same text (a fixed point).
#pragma once

#include <string>

#include "tests/fuzz/fuzz_util.h"

namespace pgherald::fuzz {

template <typename Payload>
void CheckRoundTrip(const std::uint8_t* data, std::size_t size) {
  auto first = Payload::FromJson(AsText(data, size));
  if (!first.ok()) {
    FUZZ_CHECK(!first.status().message().empty(), "a rejection must say why");
    return;
  }
  const std::string text = first->ToJson();
  auto second = Payload::FromJson(text);
  FUZZ_CHECK(second.ok(),
             "ToJson wrote what FromJson rejects: " + text + " -> " + second.status().message());
  FUZZ_CHECK(*second == *first, "FromJson(ToJson(x)) != x; ToJson(x) = " + text +
                                    " ; ToJson(again) = " + second->ToJson());
  FUZZ_CHECK(second->ToJson() == text, "ToJson is not a fixed point: " + text);
}

}  // namespace pgherald::fuzz
