#include "common/model/owner.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/model/untrusted.h"

namespace pgherald::model {
namespace {

constexpr std::size_t kMaxGuid = 64;
constexpr std::size_t kMaxSeqDigits = 18;  // fits a long long
constexpr std::size_t kMaxData = 1024;

bool IsGuid(const std::string& s) {
  return !s.empty() && s.size() <= kMaxGuid && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
  });
}

// "<prefix><guid>-<digits>" -> (guid, seq); seq -1 when `name` is not one.
std::pair<std::string, long long> SplitSequential(const std::string& name, const std::string& prefix) {
  const auto dash = name.rfind('-');
  if (name.rfind(prefix, 0) != 0 || dash == std::string::npos || dash < prefix.size() ||
      dash + 1 >= name.size() || name.size() - dash - 1 > kMaxSeqDigits) {
    return {"", -1};
  }
  long long seq = 0;
  for (std::size_t i = dash + 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return {"", -1};
    seq = seq * 10 + (name[i] - '0');
  }
  std::string guid = name.substr(prefix.size(), dash - prefix.size());
  if (!IsGuid(guid)) return {"", -1};
  return {std::move(guid), seq};
}

}  // namespace

std::optional<OwnerCandidate> ParseOwnerCandidate(const std::string& name) {
  auto [guid, seq] = SplitSequential(name, "o-");
  if (seq < 0) return std::nullopt;
  return OwnerCandidate{name, std::move(guid), seq};
}

std::vector<OwnerCandidate> SortedCandidates(const std::vector<std::string>& names) {
  std::vector<OwnerCandidate> out;
  for (const std::string& name : names) {
    if (auto c = ParseOwnerCandidate(name)) out.push_back(std::move(*c));
  }
  std::sort(out.begin(), out.end(), [](const OwnerCandidate& a, const OwnerCandidate& b) {
    return a.seq != b.seq ? a.seq < b.seq : a.name < b.name;
  });
  return out;
}

std::string MemberGuid(const std::string& name) { return SplitSequential(name, "n-").first; }

std::string OwnerIdOf(const std::string& data) {
  if (data.size() > kMaxData) return "";
  const nlohmann::json j = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  const auto id = j.find("id");
  if (id == j.end() || !id->is_string()) return "";
  const std::string value = id->get<std::string>();
  return untrusted::IsValidName(value) ? value : "";
}

std::string OwnerData(const std::string& id, const std::string& guid) {
  return nlohmann::json{{"id", id}, {"guid", guid}}.dump();
}

}  // namespace pgherald::model
