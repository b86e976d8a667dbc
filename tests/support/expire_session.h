// Ending a real ZooKeeper session from outside, as the server's expiry would: for integration
// tests against a real ensemble. Test support only (pgherald_test_support, never installed).
#pragma once

#include <chrono>
#include <string>

#include "common/base/status.h"
#include "common/zk/zk_client.h"

namespace pgherald::zk {

// Makes the server end the session `credentials` names (ZkClient::credentials()). It attaches a
// second handle to the session and closes it; the server then drops the session and its
// ephemerals, and the original client sees kExpired when it next talks to the server. Returns
// once the server has ended the session (also when it had already ended); kTimeout when that
// takes longer than `timeout`, kUnavailable when no handle can be started for `connect`.
Status ExpireSessionFromOutside(const std::string& connect,
                                const ZkSessionCredentials& credentials,
                                std::chrono::milliseconds timeout);

}  // namespace pgherald::zk
