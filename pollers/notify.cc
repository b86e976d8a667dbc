#include "pollers/notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/model/json_fields.h"
#include "common/model/untrusted.h"

namespace pgherald::pollers {
namespace {

using nlohmann::json;

StatusOr<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("notify socket path \"" + path + "\": must be 1 to " +
                           std::to_string(sizeof(addr.sun_path) - 1) + " characters");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

std::string NotifyMessage::Encode() const {
  json j = {{"node_id", node_id},     {"event", event},     {"successful", successful},
            {"timestamp", timestamp}, {"details", details}};
  return jsonf::Dump(j);
}

StatusOr<NotifyMessage> NotifyMessage::Decode(std::string_view datagram) {
  // Anyone allowed to write to the socket can send anything: same rules as a znode payload.
  static const std::string kPayload = "notify datagram";
  json j;
  PGH_RETURN_IF_ERROR(jsonf::ParseObject(datagram, kPayload, &j, jsonf::Format::kNone));
  jsonf::FieldReader f(j, kPayload, "");
  NotifyMessage m;
  using jsonf::Need;
  PGH_RETURN_IF_ERROR(
      f.I32("node_id", 0, std::numeric_limits<int>::max(), &m.node_id, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Text("event", &m.event, Need::kRequired, kMaxEventTokenLength));
  if (m.event.empty()) return InvalidArgument(kPayload + ": field 'event' is empty");
  PGH_RETURN_IF_ERROR(f.Bool("successful", &m.successful, Need::kOptional));
  PGH_RETURN_IF_ERROR(f.Text("timestamp", &m.timestamp, Need::kOptional, kMaxEventTokenLength));
  PGH_RETURN_IF_ERROR(f.Text("details", &m.details, Need::kOptional));
  return m;
}

RepmgrEvent NotifyMessage::ToEvent(std::int64_t received_us) const {
  RepmgrEvent e;
  auto ts = ParseRepmgrTimestamp(timestamp);
  e.key = {ts.ok() ? *ts : received_us, node_id, event};
  e.successful = successful;
  e.timestamp = timestamp;
  e.details = details;
  e.source = "notify";
  return e;
}

StatusOr<NotifyMessage> ParseNotifyArgs(const std::vector<std::string>& positional) {
  if (positional.size() < 4 || positional.size() > 5) {
    return InvalidArgument(
        "expected NODE_ID EVENT SUCCESS TIMESTAMP [DETAILS] (repmgr.conf: "
        "event_notification_command='pgherald notify --socket PATH %n %e %s \"%t\" \"%d\"'), got " +
        std::to_string(positional.size()) + " arguments");
  }
  NotifyMessage m;
  char* end = nullptr;
  const long id = std::strtol(positional[0].c_str(), &end, 10);
  if (positional[0].empty() || *end != '\0' || id < 0 || id > 2147483647) {
    return InvalidArgument("NODE_ID (%n): expected a repmgr node id, got \"" + positional[0] +
                           "\"");
  }
  m.node_id = static_cast<int>(id);
  m.event = positional[1];
  if (m.event.empty()) return InvalidArgument("EVENT (%e): empty");
  if (positional[2] != "1" && positional[2] != "0") {
    return InvalidArgument("SUCCESS (%s): expected 1 or 0, got \"" + positional[2] + "\"");
  }
  m.successful = positional[2] == "1";
  m.timestamp = positional[3];
  // Cut here so that the datagram stays under the receiver's limit; the receiver sanitizes too.
  if (positional.size() == 5) m.details = untrusted::SanitizeForDisplay(positional[4]);
  // Through the receiver's own decoder: what is sent is exactly what the poller will accept (a
  // timestamp with control bytes is sanitized here, not only on the other side), or an error now.
  return NotifyMessage::Decode(m.Encode());
}

Status SendNotify(const std::string& socket_path, const NotifyMessage& message) {
  PGH_ASSIGN_OR_RETURN(const sockaddr_un addr, Address(socket_path));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  const std::string data = message.Encode();
  const ssize_t n = ::sendto(fd, data.data(), data.size(), MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (n < 0) {
    return Unavailable("send to " + socket_path + ": " + std::strerror(err) +
                       " (is the poller running with poller.notify_socket set to it?)");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<NotifyListener>> NotifyListener::Bind(const std::string& path,
                                                               int mode) {
  PGH_ASSIGN_OR_RETURN(const sockaddr_un addr, Address(path));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  // A socket file left by an earlier poller that died: a datagram socket has no listener to ask,
  // and two pollers of one node on one path would be a misconfiguration anyway.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return Unavailable("poller.notify_socket " + path + ": bind: " + std::strerror(err));
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return Unavailable("poller.notify_socket " + path + ": chmod: " + std::strerror(err));
  }
  return std::unique_ptr<NotifyListener>(new NotifyListener(fd, path));
}

NotifyListener::~NotifyListener() {
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::vector<NotifyMessage> NotifyListener::Receive(std::chrono::milliseconds timeout,
                                                   std::vector<std::string>* bad, int wake_fd) {
  std::vector<NotifyMessage> out;
  pollfd p[2] = {{fd_, POLLIN, 0}, {wake_fd, POLLIN, 0}};
  const int ready = ::poll(p, wake_fd >= 0 ? 2 : 1,
                           static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
  if (ready <= 0 || (p[0].revents & POLLIN) == 0) return out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) break;
    auto m = NotifyMessage::Decode(std::string_view(buf, static_cast<size_t>(n)));
    if (m.ok()) {
      out.push_back(std::move(*m));
    } else if (bad != nullptr) {
      bad->push_back(m.status().message());
    }
  }
  return out;
}

}  // namespace pgherald::pollers
