// SHA-256 (FIPS 180-4) of a byte string, for binding a voucher to the exact bytes of the master
// record it vouches for (common/model/voucher.h). Self-contained so that the client library, which links
// no crypto library, computes the same digest as the orchestrator.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgherald::sha256 {

std::array<std::uint8_t, 32> Digest(std::string_view data);
// Lower-case hex of Digest(data).
std::string Hex(std::string_view data);

}  // namespace pgherald::sha256
