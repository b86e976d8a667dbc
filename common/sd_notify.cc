#include "common/sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace pgherald::sdnotify {

Status Notify(const std::string& state) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return Status::Ok();
  return NotifyTo(socket, state);
}

Status NotifyTo(const std::string& socket, const std::string& state) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() < 2 || (socket[0] != '/' && socket[0] != '@')) {
    return InvalidArgument("NOTIFY_SOCKET '" + socket +
                           "' is neither an absolute path nor an abstract name (@name)");
  }
  // A path needs its terminating NUL inside sun_path; an abstract name has none.
  if (socket.size() + (socket[0] == '/' ? 1 : 0) > sizeof(addr.sun_path)) {
    return InvalidArgument("NOTIFY_SOCKET '" + socket + "' is longer than a socket address");
  }
  std::memcpy(addr.sun_path, socket.data(), socket.size());
  if (socket[0] == '@') addr.sun_path[0] = '\0';
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket.size() +
                                          (socket[0] == '/' ? 1 : 0));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Internal(std::string("notify socket: ") + std::strerror(errno));
  const ssize_t n = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  if (n < 0) return Unavailable("notify " + socket + ": " + std::strerror(err));
  if (static_cast<size_t>(n) != state.size()) {
    return Unavailable("notify " + socket + ": short send");
  }
  return Status::Ok();
}

Readiness::Readiness(std::set<std::string> parts, std::string status, Sender send)
    : missing_(std::move(parts)), status_(std::move(status)), send_(std::move(send)) {}

Status Readiness::MarkUp(const std::string& part) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sent_) return Status::Ok();
  missing_.erase(part);
  if (!missing_.empty()) return Status::Ok();
  sent_ = true;
  return send_(status_.empty() ? "READY=1" : "READY=1\nSTATUS=" + status_);
}

bool Readiness::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sent_;
}

}  // namespace pgherald::sdnotify
