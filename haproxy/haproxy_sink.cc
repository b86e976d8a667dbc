#include "haproxy/haproxy_sink.h"

namespace pgherald::haproxy {

HaproxySink::HaproxySink(HaproxySinkConfig config) : config_(std::move(config)) {
  if (!config_.config_file.empty()) {
    persister_ = std::make_unique<ConfigPersister>(config_, runtime_);
  }
}

HaproxySink::~HaproxySink() { persister_.reset(); }

Status HaproxySink::Apply(const watch::RouteTarget& target) {
  // Untrusted input: an invalid field stops everything here (no runtime command, no rendering).
  if (Status s = watch::CheckTarget(target); !s.ok()) return s;
  auto current_pid = runtime_.SwitchCurrentWorker(target);
  if (!current_pid.ok()) return current_pid.status();
  if (persister_ != nullptr) persister_->Hand(target);
  if (Status s = runtime_.FinishOldSessions(target, *current_pid); !s.ok()) return s;
  return persister_ != nullptr ? persister_->status() : Status::Ok();
}

Status HaproxySink::WaitConfigSettled(std::chrono::milliseconds timeout) {
  // Without a config file nothing is ever handed over: settled at once.
  return persister_ != nullptr ? persister_->WaitSettled(timeout) : Status::Ok();
}

}  // namespace pgherald::haproxy
