#include "clients/watch/sink_registry.h"

namespace pgherald::watch {

void SinkRegistry::Add(std::string type, Parser parse) {
  for (size_t i = 0; i < types_.size(); ++i) {
    if (types_[i] == type) {
      parsers_[i] = std::move(parse);
      return;
    }
  }
  types_.push_back(std::move(type));
  parsers_.push_back(std::move(parse));
}

std::string SinkRegistry::TypeList() const {
  std::string out;
  for (const std::string& type : types_) out += (out.empty() ? "" : ", ") + type;
  return out;
}

std::optional<SinkConfig> SinkRegistry::Parse(const std::string& type,
                                              config::ConfigNode& node) const {
  for (size_t i = 0; i < types_.size(); ++i) {
    if (types_[i] == type) return parsers_[i](type, node);
  }
  return std::nullopt;
}

}  // namespace pgherald::watch
