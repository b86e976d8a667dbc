#include "common/record_backing.h"

namespace pgherald::model {

bool BackedByHistory(const MasterRecord& record,
                     const std::optional<HistoryEntry>& newest_publish) {
  if (record.state != MasterState::kOk || !newest_publish.has_value()) return false;
  const HistoryEntry& h = *newest_publish;
  if (h.action != kPublishAction || h.epoch != record.epoch || h.chosen != record.node) {
    return false;
  }
  if (!h.master.has_value()) return true;
  const MasterRecord& m = *h.master;
  return m.state == MasterState::kOk && m.epoch == record.epoch && m.node == record.node &&
         m.timeline == record.timeline && m.host == record.host && m.port == record.port;
}

std::optional<HistoryEntry> NewestPublish(const std::vector<HistoryEntry>& entries) {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->action == kPublishAction) return *it;
  }
  return std::nullopt;
}

}  // namespace pgherald::model
