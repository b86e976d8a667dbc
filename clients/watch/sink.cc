#include "clients/watch/sink.h"

#include "common/model/untrusted.h"

namespace pgherald::watch {

Status CheckTarget(const RouteTarget& target) {
  const auto& m = target.master;
  const bool block = target.action == RouteTarget::Action::kBlock;
  std::string errors;
  const auto bad = [&](const char* field, const std::string& value, const char* rule) {
    errors += std::string(errors.empty() ? "" : "; ") + field + " \"" +
              untrusted::SanitizeForDisplay(value, 200) + "\" is not " + rule;
  };
  if (!untrusted::IsValidName(m.cluster) && !(block && m.cluster.empty())) {
    bad("cluster", m.cluster, untrusted::kNameRule);
  }
  if (!untrusted::IsValidName(m.node) && !(block && m.node.empty())) {
    bad("node", m.node, untrusted::kNameRule);
  }
  if (!untrusted::IsValidHost(m.host) && !(block && m.host.empty())) {
    bad("host", m.host, untrusted::kHostRule);
  }
  if (!untrusted::IsValidPort(m.port) && !(block && m.port == 0)) {
    errors += std::string(errors.empty() ? "" : "; ") + "port " + std::to_string(m.port) +
              " is not in 1-65535";
  }
  if (errors.empty()) return Status::Ok();
  return InvalidArgument("master record refused (" + errors +
                         "): nothing applied, the running configuration stays");
}

RouteTarget SampleRoute() {
  RouteTarget sample;
  sample.master.cluster = "sample";
  sample.master.node = "sample";
  sample.master.host = "127.0.0.1";
  sample.master.port = 5432;
  return sample;
}

}  // namespace pgherald::watch
