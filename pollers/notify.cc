#include "pollers/notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

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
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

StatusOr<NotifyMessage> NotifyMessage::Decode(std::string_view datagram) {
  json j = json::parse(datagram, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("node_id") || !j["node_id"].is_number_integer() ||
      !j.contains("event") || !j["event"].is_string()) {
    return InvalidArgument("notify datagram: expected JSON with node_id and event");
  }
  // A repmgr node id is a non-negative int: anything else is refused, never wrapped (4294967297
  // must not become node 1).
  const std::int64_t node_id = j["node_id"].get<std::int64_t>();
  if (j["node_id"].is_number_unsigned() ? j["node_id"].get<std::uint64_t>() > 2147483647u
                                        : (node_id < 0 || node_id > 2147483647)) {
    return InvalidArgument("notify datagram: field \"node_id\": expected 0..2147483647, got " +
                           j["node_id"].dump());
  }
  NotifyMessage m;
  m.node_id = static_cast<int>(node_id);
  m.event = j["event"].get<std::string>();
  if (j.contains("successful") && j["successful"].is_boolean()) {
    m.successful = j["successful"].get<bool>();
  }
  if (j.contains("timestamp") && j["timestamp"].is_string()) {
    m.timestamp = j["timestamp"].get<std::string>();
  }
  if (j.contains("details") && j["details"].is_string()) m.details = j["details"].get<std::string>();
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
  if (positional.size() == 5) m.details = positional[4];
  return m;
}

Status SendNotify(const std::string& socket_path, const NotifyMessage& message) {
  auto addr = Address(socket_path);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  const std::string data = message.Encode();
  const ssize_t n = ::sendto(fd, data.data(), data.size(), MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
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
  auto addr = Address(path);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  // A socket file left by an earlier poller that died: a datagram socket has no listener to ask,
  // and two pollers of one node on one path would be a misconfiguration anyway.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
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
                                                   std::vector<std::string>* bad) {
  std::vector<NotifyMessage> out;
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
  if (ready <= 0) return out;
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
