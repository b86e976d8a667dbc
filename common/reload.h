// SIGHUP for the daemons: reload the configuration file, apply what can change safely at run time,
// and say what cannot.
//
//   config::Reloader reloader(path, {"logging"});      // the sections applied live
//   ... on SIGHUP:
//   reloader.Reload(logger, [&]() -> Status {
//     auto next = LoadPollerConfig(path);                 // every error, file:line: key
//     if (!next.ok()) return next.status();              // -> reload_failed, running config kept
//     log::Init(next->logging);                           // apply
//     return Status::Ok();
//   });
//
// Reload() logs reload_failed (error level, with every error) and keeps the running configuration
// when `load_and_apply` fails; otherwise reload_applied with the sections that changed, and one
// reload_needs_restart warning per changed top-level section that is not applied live (compared as
// YAML text against what the daemon runs with; repeated on each reload until a restart).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/base/status.h"

namespace pgherald::config {

// The top-level sections of a YAML file, each in a canonical spelling (comments, layout, flow or
// block style and quoting do not count). Empty when the file cannot be read or parsed.
std::map<std::string, std::string> SectionTexts(const std::string& path);

// The names of the sections whose text differs (added, removed or changed), sorted.
std::vector<std::string> ChangedSections(const std::map<std::string, std::string>& before,
                                         const std::map<std::string, std::string>& after);

class Reloader {
 public:
  // Reads the sections of the running configuration now (call right after the start-up load).
  Reloader(std::string path, std::set<std::string> live_sections);

  // Runs one reload (see the top of this file). Returns the outcome of `load_and_apply`.
  Status Reload(const log::Logger& logger, const std::function<Status()>& load_and_apply);

 private:
  std::string path_;
  std::set<std::string> live_;
  std::map<std::string, std::string> running_;  // what the daemon runs with, by section
};

}  // namespace pgherald::config
