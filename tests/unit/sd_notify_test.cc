// common/sd_notify.h: the datagram systemd would read, read here from a socket the test binds
// (a path and an abstract name), and Readiness's READY=1 exactly once when every part is up.
#include "common/sd_notify.h"

#include <gtest/gtest.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace pgherald::sdnotify {
namespace {

// A datagram socket bound to `name` ("/path" or "@abstract"), as systemd binds its notify socket.
class BoundSocket {
 public:
  explicit BoundSocket(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = offsetof(sockaddr_un, sun_path) + name.size();
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
    } else {
      len += 1;
      path_ = name;
    }
    bound_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
    timeval tv{2, 0};  // a missing datagram fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~BoundSocket() {
    ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  bool bound() const { return bound_; }
  // The next datagram, or "<none>" after the receive timeout.
  std::string Receive() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? "<none>" : std::string(buf, static_cast<size_t>(n));
  }
  // Whether a datagram is waiting (without waiting for one).
  bool Pending() {
    char c;
    return ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
  }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string path_;
};

std::string UniqueName(const char* prefix) {
  return std::string(prefix) + "pgherald-sd-notify-test-" + std::to_string(::getpid());
}

TEST(SdNotifyTest, SendsTheStateToASocketPath) {
  char dir[] = "/tmp/pgherald-sd-notify.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/notify";
  {
    BoundSocket socket(path);
    ASSERT_TRUE(socket.bound());
    ASSERT_TRUE(NotifyTo(path, "READY=1\nSTATUS=serving").ok());
    EXPECT_EQ(socket.Receive(), "READY=1\nSTATUS=serving");
  }
  ::rmdir(dir);
}

TEST(SdNotifyTest, AnAtSignNamesAnAbstractSocket) {
  const std::string name = UniqueName("@");
  BoundSocket socket(name);
  ASSERT_TRUE(socket.bound());
  ASSERT_TRUE(NotifyTo(name, "READY=1").ok());
  EXPECT_EQ(socket.Receive(), "READY=1");
}

TEST(SdNotifyTest, NotifyReadsTheSocketFromTheEnvironment) {
  const std::string name = UniqueName("@env-");
  BoundSocket socket(name);
  ASSERT_TRUE(socket.bound());
  ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
  Status s = Notify("STOPPING=1");
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(socket.Receive(), "STOPPING=1");
}

TEST(SdNotifyTest, WithoutNotifySocketNothingIsSentAndThatIsNotAnError) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(Notify("READY=1").ok());
  ::setenv("NOTIFY_SOCKET", "", 1);
  EXPECT_TRUE(Notify("READY=1").ok());
  ::unsetenv("NOTIFY_SOCKET");
}

TEST(SdNotifyTest, BadOrUnreachableNamesAreErrorsThatNameTheSocket) {
  for (const std::string& bad :
       std::vector<std::string>{"relative/notify", "@", "/", std::string(200, '/')}) {
    Status s = NotifyTo(bad, "READY=1");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  Status s = NotifyTo("/nonexistent-dir/notify", "READY=1");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("/nonexistent-dir/notify"), std::string::npos) << s.message();
}

// An abstract name fills sun_path without a terminating NUL: the longest one still fits.
TEST(SdNotifyTest, TheLongestAbstractNameFits) {
  std::string name = "@" + UniqueName("");
  name.resize(sizeof(sockaddr_un::sun_path), 'x');
  BoundSocket socket(name);
  ASSERT_TRUE(socket.bound());
  ASSERT_TRUE(NotifyTo(name, "READY=1").ok());
  EXPECT_EQ(socket.Receive(), "READY=1");
  EXPECT_EQ(NotifyTo(name + "x", "READY=1").code(), StatusCode::kInvalidArgument);
}

TEST(SdNotifyTest, ReadinessSendsReadyOnceWhenEveryPartIsUp) {
  const std::string name = UniqueName("@ready-");
  BoundSocket socket(name);
  ASSERT_TRUE(socket.bound());
  Readiness ready({"c1", "c2"}, "following 2 clusters",
                  [&name](const std::string& state) { return NotifyTo(name, state); });
  ASSERT_TRUE(ready.MarkUp("c1").ok());
  ASSERT_TRUE(ready.MarkUp("c1").ok());
  ASSERT_TRUE(ready.MarkUp("not-a-part").ok());
  EXPECT_FALSE(ready.ready());
  EXPECT_FALSE(socket.Pending());
  ASSERT_TRUE(ready.MarkUp("c2").ok());
  EXPECT_TRUE(ready.ready());
  EXPECT_EQ(socket.Receive(), "READY=1\nSTATUS=following 2 clusters");
  ASSERT_TRUE(ready.MarkUp("c2").ok());
  ASSERT_TRUE(ready.MarkUp("c1").ok());
  EXPECT_FALSE(socket.Pending());
}

TEST(SdNotifyTest, ReadinessFromManyThreadsSendsExactlyOnce) {
  int sends = 0;
  Readiness ready({"a", "b", "c", "d"}, "", [&sends](const std::string& state) {
    EXPECT_EQ(state, "READY=1");
    ++sends;  // under Readiness's lock
    return Status::Ok();
  });
  std::vector<std::thread> threads;
  for (const char* part : {"a", "b", "c", "d"}) {
    threads.emplace_back([&ready, part] {
      for (int i = 0; i < 1000; ++i) (void)ready.MarkUp(part);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(sends, 1);
  EXPECT_TRUE(ready.ready());
}

}  // namespace
}  // namespace pgherald::sdnotify
