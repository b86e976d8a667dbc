// Which nodes the orchestrator learns from ZooKeeper, and with which credentials.
//
// A znode under clusters/<c>/nodes/ names a host and port; anyone who can write there (a poller,
// or anyone at all without ZooKeeper auth) could name any host. So a node that is not in the
// cluster's `nodes:` list is probed only when every check here passes (docs/orchestrator.md,
// "Learned nodes"):
//   - its znode is ephemeral (a live poller's session owns it; a persistent one is a leftover or a
//     forgery);
//   - its name passes untrusted::IsValidName, its host untrusted::IsValidHost, its port 1..65535;
//   - its host is allowed: inside one of `networks` (an IP literal; names are never resolved for
//     this check) or, with no networks configured, equal to the host of a configured node;
//   - its name matches one of `names` (globs with '*'), when names are configured;
//   - the cluster has fewer than `max` learned nodes already (in name order).
// A learned node gets the cluster's password only when its connection authenticates the server
// (pg::AuthenticatesServer: sslmode=verify-full or channel_binding=require); otherwise it is probed
// with the password withheld (pg::PgParams::withhold_password).
//
// Pure functions, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace pgherald::orchestrator {

// An IPv4 or IPv6 network, "10.1.0.0/16" or "fd00::/8" (a bare address is a /32 or /128).
struct Network {
  bool v6 = false;
  std::array<std::uint8_t, 16> address{};
  int prefix = 0;
  std::string text;  // as configured, for messages

  static StatusOr<Network> Parse(std::string_view text);
  // False for anything that is not an IP literal of the same family.
  bool Contains(std::string_view host) const;
};

struct LearnPolicy {
  bool enabled = true;
  std::vector<Network> networks;   // empty: only the hosts of the cluster's configured nodes
  std::vector<std::string> names;  // empty: any valid name
  int max = 8;                     // learned nodes per cluster
};

// Stable reason codes (logs, metrics, docs): why a learned node was refused, or how it is probed.
inline constexpr char kLearnNotEphemeral[] = "learn_not_ephemeral";
inline constexpr char kLearnInvalidName[] = "learn_invalid_name";
inline constexpr char kLearnInvalidHost[] = "learn_invalid_host";
inline constexpr char kLearnInvalidPort[] = "learn_invalid_port";
inline constexpr char kLearnHostNotAllowed[] = "learn_host_not_allowed";
inline constexpr char kLearnNameNotAllowed[] = "learn_name_not_allowed";
inline constexpr char kLearnOverMax[] = "learn_over_max";
inline constexpr char kLearnPasswordWithheld[] = "learn_password_withheld";

struct LearnCandidate {
  std::string name;
  std::string host;
  std::int64_t port = 0;
  bool ephemeral = false;
};

// "" when `candidate` may be learned (before the max, which the caller counts), else the reason
// code. `configured_hosts` are the hosts of the cluster's configured nodes.
std::string CheckLearnable(const LearnPolicy& policy,
                           const std::vector<std::string>& configured_hosts,
                           const LearnCandidate& candidate);

// Which observations under clusters/<c>/nodes/ a round reads. Anyone who may write there (a
// compromised poller) could create any number of znodes, and every one read costs a ZooKeeper read
// and memory in every round's cache. So a round reads every configured node's observation, then at
// most `learn_max + kObservationsBeyondLearned` others, in name order (the same ones from round to
// round); `left_out` counts the rest, which the caller reports. Observations of nodes that are not
// configured still count against split brain, hence the allowance beyond the learned ones.
inline constexpr int kObservationsBeyondLearned = 16;
struct ObservationSelection {
  std::vector<std::string> names;  // sorted
  std::size_t left_out = 0;
  std::string first_left_out;      // for the message, "" when none
};
ObservationSelection SelectObservations(std::vector<std::string> children,
                                        const std::vector<std::string>& configured, int learn_max);

// Glob match with '*' (any run of characters, also empty); no other metacharacters.
bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace pgherald::orchestrator
