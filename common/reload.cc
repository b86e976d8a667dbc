#include "common/reload.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>

namespace pgherald::config {
namespace {

// One spelling per content: flow and block styles, quoting and comments do not count.
std::string Canonical(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "\"" + node.Scalar() + "\"";
    case YAML::NodeType::Sequence: {
      std::string out = "[";
      for (const auto& item : node) out += Canonical(item) + ",";
      return out + "]";
    }
    case YAML::NodeType::Map: {
      std::map<std::string, std::string> entries;
      for (const auto& entry : node) entries[Canonical(entry.first)] = Canonical(entry.second);
      std::string out = "{";
      for (const auto& entry : entries) out += entry.first + ":" + entry.second + ",";
      return out + "}";
    }
    default:
      return "~";
  }
}

}  // namespace

std::map<std::string, std::string> SectionTexts(const std::string& path) {
  std::map<std::string, std::string> out;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) return out;
    for (const auto& entry : root) {
      out[entry.first.as<std::string>()] = Canonical(entry.second);
    }
  } catch (const std::exception&) {
    out.clear();
  }
  return out;
}

std::vector<std::string> ChangedSections(const std::map<std::string, std::string>& before,
                                         const std::map<std::string, std::string>& after) {
  std::vector<std::string> changed;
  for (const auto& entry : before) {
    auto it = after.find(entry.first);
    if (it == after.end() || it->second != entry.second) changed.push_back(entry.first);
  }
  for (const auto& entry : after) {
    if (before.count(entry.first) == 0) changed.push_back(entry.first);
  }
  std::sort(changed.begin(), changed.end());
  return changed;
}

Reloader::Reloader(std::string path, std::set<std::string> live_sections)
    : path_(std::move(path)), live_(std::move(live_sections)), running_(SectionTexts(path_)) {}

Status Reloader::Reload(const log::Logger& logger, const std::function<Status()>& load_and_apply) {
  logger.Info("reload_requested", {{"config", path_}});
  const std::map<std::string, std::string> next = SectionTexts(path_);
  if (Status s = load_and_apply(); !s.ok()) {
    logger.Error("reload_failed",
                 {{"config", path_}, {"kept", "the running configuration"}, {"error", s.message()}});
    return s;
  }
  std::string applied;
  for (const std::string& section : ChangedSections(running_, next)) {
    if (live_.count(section) > 0) {
      applied += (applied.empty() ? "" : ",") + section;
      if (auto it = next.find(section); it != next.end()) {
        running_[section] = it->second;
      } else {
        running_.erase(section);
      }
    } else {
      logger.Warn("reload_needs_restart",
                  {{"config", path_}, {"section", section},
                   {"note", "changed in the file, not applied: restart the daemon to apply it"}});
    }
  }
  logger.Info("reload_applied", {{"config", path_}, {"changed", applied.empty() ? "-" : applied}});
  return Status::Ok();
}

}  // namespace pgherald::config
