// Compiles against the installed C++17 header only; linked with the shared and the static library.
#include <pgherald/master_watch.h>

#include <cstdio>

int main() {
  pgherald::client::MasterWatchOptions options;
  std::string error;
  if (pgherald::client::MasterWatch::Start(options, &error) != nullptr || error.empty()) {
    std::fprintf(stderr, "empty options were accepted\n");
    return 1;
  }
  options.zk_connect = "127.0.0.1:32002";  // nothing listens: kDisconnected, not an error
  options.cluster = "c1";
  auto watch = pgherald::client::MasterWatch::Start(options, &error);
  if (!watch) {
    std::fprintf(stderr, "start failed: %s\n", error.c_str());
    return 1;
  }
  pgherald::client::MasterInfo info = watch->current();
  std::printf("status=%s conninfo='%s'\n", pgherald::client::MasterStatusName(info.status),
              pgherald::client::MasterConninfo(info).c_str());
  return info.status == pgherald::client::MasterStatus::kDisconnected ? 0 : 1;
}
