// Sinks as plug-ins: a SinkRegistry maps a sink type ("haproxy", "pgbouncer", "exec", "file") to
// the parser of its YAML keys and to its factory. The watch's config (watch_config.h) and daemon
// (watch_command.h) know sinks only through this registry and the Sink interface (sink.h); each
// sink lives in its own folder and parses its own keys; app/ registers the built-in ones
// (app/builtin_sinks.h).
//
//   watch::SinkRegistry registry;
//   registry.Register<haproxy::HaproxySink>("haproxy", &haproxy::ParseHaproxySinkConfig);
//
// A parser reads every key of its sink but `type` from the sink's node and records each mistake
// there (node.Fail, or the typed getters): the load then reports them all at once with file:line,
// the key and a "did you mean" for unknown keys (common/config.h). It returns its settings even
// when it recorded errors; they are never used then, since the whole load fails.
#pragma once

#include <any>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "clients/watch/sink.h"
#include "common/config.h"

namespace pgherald::watch {

// One configured sink: its type, its name (unique within its cluster; the type by default) and
// the settings its type's parser returned. Copyable; Make() builds a new sink each time (the
// daemon rebuilds its sinks on SIGHUP).
struct SinkConfig {
  std::string type;
  std::string name;
  std::any settings;
  std::function<std::unique_ptr<Sink>(const std::any&)> make;  // the type's factory

  // The settings as the parser returned them (e.g. haproxy::HaproxySinkConfig);
  // std::bad_any_cast for another type.
  template <class Settings>
  const Settings& As() const {
    return std::any_cast<const Settings&>(settings);
  }
  std::unique_ptr<Sink> Make() const { return make(settings); }
};

class SinkRegistry {
 public:
  // Adds sink type `type`: `parse` reads a sink's settings (a copyable struct with a std::string
  // `name` member: the sink's name), and the sink is built as SinkType(settings). Registering a
  // type twice replaces it.
  template <class SinkType, class Settings>
  void Register(std::string type, Settings (*parse)(config::ConfigNode& node)) {
    auto make = [](const std::any& settings) -> std::unique_ptr<Sink> {
      return std::make_unique<SinkType>(std::any_cast<const Settings&>(settings));
    };
    Add(std::move(type), [parse, make](const std::string& t, config::ConfigNode& node) {
      Settings settings = parse(node);
      SinkConfig config;
      config.type = t;
      config.name = settings.name;
      config.settings = std::move(settings);
      config.make = make;
      return config;
    });
  }

  // The registered types, in registration order (for "one of ..." messages).
  const std::vector<std::string>& types() const { return types_; }
  // "haproxy, pgbouncer, exec, file".
  std::string TypeList() const;
  // The sink described at `node`, of type `type`; nullopt (nothing recorded) for a type that is
  // not registered.
  std::optional<SinkConfig> Parse(const std::string& type, config::ConfigNode& node) const;

 private:
  using Parser = std::function<SinkConfig(const std::string& type, config::ConfigNode& node)>;
  void Add(std::string type, Parser parse);

  std::vector<std::string> types_;
  std::vector<Parser> parsers_;  // parallel to types_
};

}  // namespace pgherald::watch
