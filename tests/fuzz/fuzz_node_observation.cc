// Fuzz target: the NodeObservation payload (common/model/cluster_model.h) read from untrusted znode
// content. Property: FromJson never crashes; what it accepts survives ToJson -> FromJson unchanged.
#include "common/model/cluster_model.h"
#include "tests/fuzz/payload_roundtrip.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pgherald::fuzz::CheckRoundTrip<pgherald::model::NodeObservation>(data, size);
  return 0;
}
