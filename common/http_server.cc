#include "common/http_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "common/model/json_fields.h"
#include "common/logging.h"
#include "common/model/untrusted.h"

namespace pgherald::http {
namespace {

constexpr std::size_t kMaxBody = 64 * 1024;

const log::Logger& Log() {
  static const log::Logger logger("http");
  return logger;
}

}  // namespace

ListenConfig ParseListen(config::ConfigNode& node) {
  ListenConfig out;
  out.address = node.Optional<std::string>("address", out.address);
  out.port = node.Required<int>("port", {.min = 0, .max = 65535});
  out.max_connections =
      node.Optional<int>("max_connections", out.max_connections, {.min = 4, .max = 4096});
  out.request_timeout = node.Optional<Millis>("request_timeout_ms", out.request_timeout,
                                              {.min = Millis(100), .max = Millis(60000)});
  return out;
}

std::optional<ListenConfig> ParseOptionalListen(config::ConfigNode root) {
  if (!root.Has("http")) return std::nullopt;
  config::ConfigNode node = root.Child("http");
  return ParseListen(node);
}

Response ErrorResponse(int status, const std::string& message) {
  using json = nlohmann::json;
  return {status, "application/json",
          jsonf::Dump(json{{"error", message}}) + "\n",
          ""};
}

// --- Transport -------------------------------------------------------------------------------
//
// One thread, poll(2) over the listening socket, the open connections and a wake pipe. A
// connection is only a buffer until its whole request (head and body) has arrived, so idle or slow
// clients hold no thread: /health is answered while any number of them sit there. Limits:
//   - at most max_connections open; when full, a new connection evicts the oldest one still
//     reading its request (a slow or idle client), else it is closed at once;
//   - a request (head and body) must arrive within request_timeout, and its response must drain
//     within request_timeout again; then the connection is closed;
//   - heads up to kMaxHead bytes (431 beyond), bodies up to kMaxBody (413 beyond), no chunked
//     bodies (411); one request per connection ("Connection: close", no keep-alive).
// Handlers run on this thread: GETs read an immutable snapshot; an authorized POST writes the
// control znode through its own session (the only handler that can wait, bounded by ZooKeeper's
// operation timeout).

struct Server::Impl {
  ListenConfig config;
  Handler handler;
  int listen_fd = -1;
  int wake_pipe[2] = {-1, -1};
  int port = 0;
  std::thread thread;
  std::atomic<bool> stop{false};

  struct Conn {
    int fd = -1;
    std::chrono::steady_clock::time_point deadline;
    std::uint64_t serial = 0;  // accept order: the lowest is the oldest
    std::string in;
    std::string out;  // the response, once the request is complete
    std::size_t sent = 0;
    bool responding = false;
  };

  void Loop();
  void Accept(std::vector<Conn>& conns, std::uint64_t* serial);
  // Reads what is there; returns false when the connection is to be closed.
  bool Read(Conn& c);
  bool Write(Conn& c);
  void Respond(Conn& c, const Response& r, bool head);
  // Whether c.in holds a whole request; answers it (or an error) when it does.
  void MaybeHandle(Conn& c);
};

namespace {

constexpr std::size_t kMaxHead = 16 * 1024;

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

std::string LowerAscii(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

void CloseFd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

}  // namespace

void Server::Impl::Respond(Conn& c, const Response& r, bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
  out += "Content-Type: " + (r.content_type.empty() ? std::string("text/plain") : r.content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  out += "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n";
  if (!r.www_authenticate.empty()) out += "WWW-Authenticate: " + r.www_authenticate + "\r\n";
  out += "\r\n";
  if (!head) out += r.body;
  c.out = std::move(out);
  c.sent = 0;
  c.responding = true;
  c.in.clear();
  c.deadline = std::chrono::steady_clock::now() + config.request_timeout;
}

void Server::Impl::MaybeHandle(Conn& c) {
  const auto end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (c.in.size() > kMaxHead) Respond(c, ErrorResponse(431, "request head larger than 16 KiB"), false);
    return;
  }
  if (end > kMaxHead) return Respond(c, ErrorResponse(431, "request head larger than 16 KiB"), false);
  std::istringstream head(c.in.substr(0, end));
  std::string line;
  std::getline(head, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::istringstream request_line(line);
  std::string method, uri, version;
  request_line >> method >> uri >> version;
  if (method.empty() || uri.empty() || uri[0] != '/' || version.rfind("HTTP/1.", 0) != 0) {
    return Respond(c, ErrorResponse(400, "malformed request line"), false);
  }
  std::string authorization;
  std::size_t content_length = 0;
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) return Respond(c, ErrorResponse(400, "malformed header line"), false);
    const std::string name = LowerAscii(Trim(line.substr(0, colon)));
    const std::string value = Trim(line.substr(colon + 1));
    if (name == "authorization") {
      authorization = value;
    } else if (name == "content-length") {
      if (value.empty() || value.size() > 9 ||
          value.find_first_not_of("0123456789") != std::string::npos) {
        return Respond(c, ErrorResponse(400, "bad Content-Length"), false);
      }
      content_length = static_cast<std::size_t>(std::stoul(value));
    } else if (name == "transfer-encoding") {
      return Respond(c, ErrorResponse(411, "chunked bodies are not accepted: send Content-Length"), false);
    }
  }
  if (content_length > kMaxBody) return Respond(c, ErrorResponse(413, "body larger than 64 KiB"), false);
  const std::size_t body_at = end + 4;
  if (c.in.size() < body_at + content_length) return;  // the body is still arriving
  Request request;
  request.method = method;
  request.uri = uri;
  request.path = uri.substr(0, uri.find('?'));
  if (request.path.size() > 1 && request.path.back() == '/') request.path.pop_back();
  request.authorization = authorization;
  request.body = c.in.substr(body_at, content_length);
  Response r;
  try {
    r = handler(request);
  } catch (const std::exception& e) {  // a handler bug must not take the server down
    Log().Error("http_handler_failed", {{"path", untrusted::SanitizeForDisplay(uri, 200)},
                                        {"error", e.what()}});
    r = ErrorResponse(500, "internal error");
  }
  Respond(c, r, method == "HEAD");
}

bool Server::Impl::Read(Conn& c) {
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (c.responding) continue;  // anything after the request is ignored
      c.in.append(buf, static_cast<std::size_t>(n));
      if (c.in.size() > kMaxHead + kMaxBody + 4) break;
      continue;
    }
    if (n == 0) return c.responding;  // peer closed; finish a response it may still read
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    return false;
  }
  if (!c.responding) MaybeHandle(c);
  return true;
}

bool Server::Impl::Write(Conn& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  return false;  // all sent: close
}

void Server::Impl::Accept(std::vector<Conn>& conns, std::uint64_t* serial) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error a later poll reports again
    if (static_cast<int>(conns.size()) >= config.max_connections) {
      // Full: make room by dropping the oldest connection still reading its request.
      auto oldest = conns.end();
      for (auto it = conns.begin(); it != conns.end(); ++it) {
        if (!it->responding && (oldest == conns.end() || it->serial < oldest->serial)) oldest = it;
      }
      if (oldest == conns.end()) {
        ::close(fd);
        Log().Debug("http_connection_refused", {{"open", conns.size()}});
        continue;
      }
      Log().Debug("http_connection_evicted", {{"open", conns.size()}});
      CloseFd(&oldest->fd);
      conns.erase(oldest);
    }
    Conn c;
    c.fd = fd;
    c.serial = (*serial)++;
    c.deadline = std::chrono::steady_clock::now() + config.request_timeout;
    conns.push_back(std::move(c));
  }
}

void Server::Impl::Loop() {
  std::vector<Conn> conns;
  std::uint64_t serial = 0;
  std::vector<pollfd> fds;
  while (!stop.load()) {
    fds.clear();
    fds.push_back({wake_pipe[0], POLLIN, 0});
    fds.push_back({listen_fd, POLLIN, 0});
    auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::seconds(1);
    for (const Conn& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.responding ? POLLOUT : POLLIN), 0});
      next = std::min(next, c.deadline);
    }
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<std::int64_t>(0, wait_ms)) + 1);
    if (ready < 0 && errno != EINTR) {
      Log().Error("http_poll_failed", {{"error", std::strerror(errno)}});
      break;
    }
    now = std::chrono::steady_clock::now();
    std::vector<bool> keep(conns.size(), true);
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& c = conns[i];
      const short rev = fds[i + 2].revents;
      if (rev & (POLLERR | POLLNVAL)) {
        keep[i] = false;
      } else if (rev & (POLLIN | POLLHUP)) {
        keep[i] = Read(c);
      }
      if (keep[i] && c.responding && ((rev & POLLOUT) || c.sent == 0)) keep[i] = Write(c);
      if (keep[i] && now >= c.deadline) keep[i] = false;  // too slow to send or to read
    }
    std::vector<Conn> still;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      if (keep[i]) {
        still.push_back(std::move(conns[i]));
      } else {
        CloseFd(&conns[i].fd);
      }
    }
    conns = std::move(still);
    if (fds[1].revents & POLLIN) Accept(conns, &serial);
  }
  for (Conn& c : conns) CloseFd(&c.fd);
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  if (!impl_) return;
  impl_->stop.store(true);
  if (impl_->wake_pipe[1] >= 0) {
    const char x = 0;
    (void)!::write(impl_->wake_pipe[1], &x, 1);
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  CloseFd(&impl_->listen_fd);
  CloseFd(&impl_->wake_pipe[0]);
  CloseFd(&impl_->wake_pipe[1]);
}

int Server::port() const { return impl_->port; }

StatusOr<std::unique_ptr<Server>> Server::Start(const ListenConfig& config, Handler handler,
                                                const std::string& post_note) {
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->handler = std::move(handler);
  const std::string where = config.address + ":" + std::to_string(config.port);
  auto fail = [&](const std::string& what) -> Status {
    const std::string error = std::strerror(errno);
    CloseFd(&impl->listen_fd);
    return Unavailable("http: cannot listen on " + where + ": " + what + ": " + error +
                       " (change http.address / http.port)");
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(config.port);
  if (int rc = ::getaddrinfo(config.address.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    return Unavailable("http: cannot listen on " + where + ": " + ::gai_strerror(rc) +
                       " (change http.address)");
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
  impl->listen_fd = ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return fail("socket");
  // SO_REUSEADDR (restart while old connections linger) but never SO_REUSEPORT: a second
  // process on the same port must fail, not silently share it.
  const int one = 1;
  ::setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(impl->listen_fd, found->ai_addr, found->ai_addrlen) != 0) return fail("bind");
  if (::listen(impl->listen_fd, 64) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  impl->port = ntohs(bound.ss_family == AF_INET6
                         ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (::pipe2(impl->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return fail("pipe");
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->Loop(); });
  Log().Info("http_listening",
             {{"address", config.address},
              {"port", impl->port},
              {"max_connections", config.max_connections},
              {"request_timeout_ms", config.request_timeout.count()},
              {"post", post_note}});
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

}  // namespace pgherald::http
