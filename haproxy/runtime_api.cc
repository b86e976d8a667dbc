#include "haproxy/runtime_api.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/backoff.h"
#include "common/model/untrusted.h"

namespace pgherald::haproxy {
namespace {

std::string Trimmed(const std::string& s) {
  size_t e = s.size();
  while (e > 0 && (s[e - 1] == '\n' || s[e - 1] == ' ' || s[e - 1] == '\r')) --e;
  size_t b = 0;
  while (b < e && (s[b] == '\n' || s[b] == ' ')) ++b;
  return s.substr(b, e - b);
}

bool HasControl(const std::string& s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

StatusOr<std::string> SendCommand(const std::string& socket_path, const std::string& command,
                                  std::chrono::milliseconds timeout) {
  if (HasControl(command)) {
    return InvalidArgument("refusing to send \"" + untrusted::SanitizeForDisplay(command, 200) +
                           "\" to haproxy socket " + socket_path +
                           ": a control character would start another command");
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("haproxy socket path too long: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Unavailable("cannot connect to haproxy socket " + socket_path + ": " + why);
  }
  const std::string line = command + "\n";
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Unavailable("cannot send to haproxy socket " + socket_path + ": " + why);
    }
    sent += static_cast<size_t>(n);
  }
  // Half-close: the master CLI answers and closes only once it sees the end of the input
  // (as with `echo cmd | socat stdio master.sock`); the runtime socket accepts it as well.
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::close(fd);
      return Status(StatusCode::kTimeout, "haproxy socket " + socket_path +
                                              " did not finish answering \"" + command + "\" within " +
                                              std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{fd, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Unavailable("cannot read from haproxy socket " + socket_path + ": " + why);
    }
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

StatusOr<bool> ParseSetAddrAnswer(const std::string& command, const std::string& answer) {
  const std::string text = Trimmed(answer);
  const bool changed = text.find("changed from") != std::string::npos;
  if (changed || text.find("no need to change") != std::string::npos) return changed;
  return FailedPrecondition("haproxy refused \"" + command + "\": " + text);
}

StatusOr<std::string> SetAddrCommand(const ServerRef& ref, const std::string& host, int port) {
  if (!untrusted::IsValidName(ref.backend) || !untrusted::IsValidName(ref.server)) {
    return InvalidArgument("haproxy server \"" + untrusted::SanitizeForDisplay(ref.Name(), 200) +
                           "\": backend and server must each be " + untrusted::kNameRule);
  }
  if (!untrusted::IsValidHost(host)) {
    return InvalidArgument("master host \"" + untrusted::SanitizeForDisplay(host, 200) +
                           "\" is not " + untrusted::kHostRule + "; not sent to haproxy");
  }
  if (!untrusted::IsValidPort(port)) {
    return InvalidArgument("master port " + std::to_string(port) +
                           " is not in 1-65535; not sent to haproxy");
  }
  return "set server " + ref.Name() + " addr " + host + " port " + std::to_string(port);
}

StatusOr<bool> SetServerAddr(const std::string& socket, const ServerRef& ref,
                             const std::string& host, int port,
                             std::chrono::milliseconds timeout) {
  auto command = SetAddrCommand(ref, host, port);
  if (!command.ok()) return command.status();
  auto answer = SendCommand(socket, *command, timeout);
  if (!answer.ok()) return answer.status();
  return ParseSetAddrAnswer(*command, *answer);
}

StatusOr<std::string> SendCommandRetrying(const std::string& socket_path,
                                          const std::string& command,
                                          std::chrono::milliseconds window,
                                          std::chrono::milliseconds timeout) {
  StatusOr<std::string> answer = Unavailable("not sent yet");
  (void)RetryUntil(std::chrono::steady_clock::now() + window, Millis(1), nullptr,
                   [&](Millis) -> std::optional<bool> {
                     answer = SendCommand(socket_path, command, timeout);
                     if (!answer.ok() && answer.status().code() == StatusCode::kUnavailable) {
                       return std::nullopt;  // refused: retried
                     }
                     return true;
                   });
  return answer;
}

StatusOr<BatchAnswer> SendBatch(const std::string& socket_path,
                                const std::vector<std::string>& commands,
                                std::chrono::milliseconds timeout) {
  std::string line;
  for (const auto& c : commands) {
    if (c.find(';') != std::string::npos || HasControl(c)) {
      return InvalidArgument("refusing to send \"" + untrusted::SanitizeForDisplay(c, 200) +
                             "\" to haproxy socket " + socket_path +
                             ": ';' or a control character would add commands to the batch");
    }
    line += c + ";";
  }
  line += "show info";
  auto raw = SendCommand(socket_path, line, timeout);
  if (!raw.ok()) return raw.status();
  auto out = ParseBatchAnswer(commands.size(), *raw);
  if (!out) {
    return Unavailable("haproxy socket " + socket_path + " closed before answering \"" + line +
                       "\" in full (a worker exiting after a reload?): \"" + Trimmed(*raw) +
                       "\"");
  }
  return *out;
}

std::optional<BatchAnswer> ParseBatchAnswer(std::size_t commands_count, const std::string& raw) {
  // Non-interactive mode ends each command's answer with an empty line: a silent success is just
  // that empty line, and `show info` (last) has no empty line inside.
  BatchAnswer out;
  std::string current;
  size_t start = 0;
  while (start < raw.size() && out.answers.size() < commands_count) {
    size_t end = raw.find('\n', start);
    if (end == std::string::npos) end = raw.size();
    std::string l = raw.substr(start, end - start);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    start = end + 1;
    if (l.empty()) {
      out.answers.push_back(Trimmed(current));
      current.clear();
    } else {
      current += (current.empty() ? "" : "\n") + l;
    }
  }
  const std::string info = start < raw.size() ? raw.substr(start) : "";
  auto field = [&](const std::string& key) -> std::string {
    const std::string tag = key + ": ";
    size_t at = info.rfind("\n" + tag);
    if (at != std::string::npos) {
      at += 1;
    } else if (info.rfind(tag, 0) == 0) {
      at = 0;
    } else {
      return "";
    }
    at += tag.size();
    return Trimmed(info.substr(at, info.find('\n', at) - at));
  };
  out.pid = field("Pid");
  if (out.answers.size() != commands_count || out.pid.empty()) return std::nullopt;
  out.stopping = field("Stopping") == "1";
  return out;
}

std::vector<std::string> ParseShowProc(const std::string& answer) {
  std::vector<std::string> pids;
  size_t start = 0;
  while (start < answer.size()) {
    size_t end = answer.find('\n', start);
    if (end == std::string::npos) end = answer.size();
    std::istringstream line(answer.substr(start, end - start));
    std::string pid;
    std::string type;
    line >> pid >> type;
    if (!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos &&
        type == "worker") {
      pids.push_back(pid);
    }
    start = end + 1;
  }
  return pids;
}

std::vector<std::string> ParseShowSessIds(const std::string& answer, const ServerRef& ref) {
  std::vector<std::string> ids;
  std::istringstream lines(answer);
  std::string line;
  const std::string be = " be=" + ref.backend + " ";
  const std::string srv = " srv=" + ref.server + " ";
  while (std::getline(lines, line)) {
    if (line.find(be) == std::string::npos || line.find(srv) == std::string::npos) continue;
    const std::string id = line.substr(0, line.find(':'));
    if (id.size() > 2 && id.size() <= 18 && id.rfind("0x", 0) == 0 &&
        id.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos) {
      ids.push_back(id);
    }
  }
  return ids;
}

Status RunSilentCommand(const std::string& socket, const std::string& command,
                        std::chrono::milliseconds timeout) {
  auto answer = SendCommand(socket, command, timeout);
  if (!answer.ok()) return answer.status();
  const std::string text = Trimmed(*answer);
  if (!text.empty()) return FailedPrecondition("haproxy refused \"" + command + "\": " + text);
  return Status::Ok();
}

}  // namespace pgherald::haproxy
