// Whether a master record is backed by history (docs/zookeeper-contract.md): the orchestrator's
// publish multi writes the record and a history entry together, so a record it wrote is the one
// named by the newest history entry with action "publish". Shared by the leader's trust check and
// by `pgherald status` (problem master_unbacked).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "common/cluster_model.h"

namespace pgherald::model {

inline constexpr std::string_view kPublishAction = "publish";

// `newest_publish`: the newest history entry whose action is "publish" (nullopt: none). True when
// the record is state ok and the entry has the same epoch and node (its `chosen`) and -- when the
// entry carries the record it wrote (`master`) -- the same node, timeline, host and port. An entry
// without `master` cannot vouch for the timeline, host or port: it backs epoch and node only.
bool BackedByHistory(const MasterRecord& record, const std::optional<HistoryEntry>& newest_publish);

// The newest entry with action "publish" among `entries` given oldest first, or nullopt.
std::optional<HistoryEntry> NewestPublish(const std::vector<HistoryEntry>& entries);

}  // namespace pgherald::model
