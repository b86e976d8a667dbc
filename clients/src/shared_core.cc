#include "clients/src/shared_core.h"

#include <iterator>
#include <map>
#include <mutex>
#include <utility>

namespace pgherald::client::internal {

std::shared_ptr<SharedCore> NewCore(WatchSettings settings, SessionFactory factory,
                                    std::unique_ptr<zk::ZkSession> first,
                                    std::shared_ptr<LogFanout> logs) {
  auto shared = std::make_shared<SharedCore>();
  shared->runtime = Runtime::Acquire();
  shared->logs = std::move(logs);
  shared->core = std::make_shared<WatchCore>(std::move(settings), std::move(factory),
                                             shared->runtime.get());
  shared->core->Begin(std::move(first));
  return shared;
}

std::shared_ptr<SharedCore> FindOrMakeShared(
    const std::string& key, const std::function<std::shared_ptr<SharedCore>()>& make) {
  // Leaked on purpose: a watch may be destroyed during static destruction.
  static std::mutex* mu = new std::mutex;
  static auto* registry = new std::map<std::string, std::weak_ptr<SharedCore>>;
  std::lock_guard lock(*mu);
  for (auto it = registry->begin(); it != registry->end();) {
    it = it->second.expired() ? registry->erase(it) : std::next(it);
  }
  auto found = registry->find(key);
  if (found != registry->end()) {
    if (std::shared_ptr<SharedCore> alive = found->second.lock()) return alive;
  }
  std::shared_ptr<SharedCore> made = make();
  if (made) (*registry)[key] = made;
  return made;
}

}  // namespace pgherald::client::internal
