// `pgherald notify`: repmgr's event_notification_command hands an event to the local poller over a
// unix datagram socket. The sender never blocks and never fails: when the poller is down (no
// socket, nobody reading, its queue full) the datagram is dropped and the command still exits 0,
// because repmgr waits for the command and a failover must not wait for pgherald.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "pollers/observation.h"

namespace pgherald::pollers {

// repmgr's placeholders: %n node_id, %e event, %s success (1/0), %t timestamp, %d details.
struct NotifyMessage {
  int node_id = 0;
  std::string event;
  bool successful = true;
  std::string timestamp;
  std::string details;

  std::string Encode() const;  // JSON
  static StatusOr<NotifyMessage> Decode(std::string_view datagram);
  // The fact this becomes. The key's time is %t parsed (the same microseconds as the table row,
  // so both sources give one znode); `received_us` when %t does not parse.
  RepmgrEvent ToEvent(std::int64_t received_us) const;
};

// Parses `NODE_ID EVENT SUCCESS TIMESTAMP [DETAILS]`. kInvalidArgument naming the argument.
StatusOr<NotifyMessage> ParseNotifyArgs(const std::vector<std::string>& positional);

// One non-blocking sendto. kUnavailable when nobody listens (the caller logs and exits 0).
Status SendNotify(const std::string& socket_path, const NotifyMessage& message);

// The poller's end: a bound datagram socket (stale socket files are replaced).
class NotifyListener {
 public:
  static StatusOr<std::unique_ptr<NotifyListener>> Bind(const std::string& path, int mode);
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // Waits up to `timeout` for datagrams; returns every one available (empty on timeout).
  // Malformed datagrams are returned as errors in `bad` (for the log) and skipped. The wait also
  // ends when `wake_fd` (>= 0) becomes readable; the caller reads it.
  std::vector<NotifyMessage> Receive(std::chrono::milliseconds timeout,
                                     std::vector<std::string>* bad, int wake_fd = -1);
  const std::string& path() const { return path_; }

 private:
  NotifyListener(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

}  // namespace pgherald::pollers
