// The one test-support file that includes <zookeeper/zookeeper.h>: ExpireSessionFromOutside needs
// a second handle on somebody else's session, which the product's ZkClient
// (common/zk/zk_client.cc) never offers.
#include "tests/support/expire_session.h"

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

namespace pgherald::zk {

Status ExpireSessionFromOutside(const std::string& connect,
                                const ZkSessionCredentials& credentials,
                                std::chrono::milliseconds timeout) {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    int state = 0;
  };
  auto watcher = [](zhandle_t*, int type, int state, const char*, void* context) {
    if (type != ZOO_SESSION_EVENT) return;
    auto* w = static_cast<Waiter*>(context);
    {
      std::lock_guard lock(w->mu);
      w->state = state;
    }
    w->cv.notify_all();
  };
  clientid_t id{};
  id.client_id = credentials.session_id;
  std::memcpy(id.passwd, credentials.password.data(),
              std::min(sizeof id.passwd, credentials.password.size()));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Attaching moves the session to our connection and closing it ends the session, unless the
  // owner's client reconnected in between and moved the session back (then our close request is
  // never sent). So: attach and close until an attach is refused with "expired".
  for (;;) {
    Waiter waiter;
    // No log callback: the C library's lines go to its stream (stderr), at the level the
    // session's own ZkClient set.
    zhandle_t* zh = zookeeper_init(connect.c_str(), watcher, 10000, &id, &waiter, 0);
    if (zh == nullptr) return Unavailable("cannot start a ZooKeeper handle for '" + connect + "'");
    int state;
    {
      std::unique_lock lock(waiter.mu);
      waiter.cv.wait_until(lock, deadline, [&] {
        return waiter.state == ZOO_CONNECTED_STATE || waiter.state == ZOO_EXPIRED_SESSION_STATE ||
               waiter.state == ZOO_AUTH_FAILED_STATE;
      });
      state = waiter.state;
    }
    zookeeper_close(zh);
    if (state == ZOO_EXPIRED_SESSION_STATE) return Status::Ok();
    if (state != ZOO_CONNECTED_STATE || std::chrono::steady_clock::now() >= deadline) {
      return Status(StatusCode::kTimeout, "could not end session " +
                                              std::to_string(credentials.session_id) +
                                              " within " + std::to_string(timeout.count()) + " ms");
    }
  }
}

}  // namespace pgherald::zk
