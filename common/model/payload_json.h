// The payloads of common/model/cluster_model.h as nlohmann values, for code that embeds a payload in a
// larger JSON document (the cluster view, the file publisher) instead of parsing ToJson()'s text
// back. Internal to pgherald like json_fields.h: nlohmann::json is in the interface, so the
// client library never includes it. jsonf::Dump(ToJsonValue(x)) == x.ToJson().
#pragma once

#include <nlohmann/json.hpp>

#include "common/model/cluster_model.h"

namespace pgherald::model {

nlohmann::json ToJsonValue(const MasterRecord& record);
nlohmann::json ToJsonValue(const HistoryEntry& entry);

}  // namespace pgherald::model
