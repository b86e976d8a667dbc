// The C API over MasterWatch. No exception may cross into C: std::function copies and string
// building can throw std::bad_alloc, which is caught at every entry point that allocates.
#include "pgherald/master_watch_c.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "clients/src/master_watch_internal.h"
#include "pgherald/master_watch.h"

struct pgherald_watch {
  std::unique_ptr<pgherald::client::MasterWatch> watch;
};

namespace {

using pgherald::client::MasterInfo;
using pgherald::client::MasterStatus;

pgherald_status ToC(MasterStatus status) {
  switch (status) {
    case MasterStatus::kVouched: return PGHERALD_VOUCHED;
    case MasterStatus::kUnverified: return PGHERALD_UNVERIFIED;
    case MasterStatus::kNoMaster: return PGHERALD_NO_MASTER;
    case MasterStatus::kDisconnected: return PGHERALD_DISCONNECTED;
  }
  return PGHERALD_DISCONNECTED;
}

// Copies with truncation; returns false if `value` did not fit.
bool CopyField(char (&dst)[PGHERALD_NAME_MAX], const std::string& value) {
  const size_t n = value.size() < PGHERALD_NAME_MAX ? value.size() : PGHERALD_NAME_MAX - 1;
  std::memcpy(dst, value.data(), n);
  dst[n] = '\0';
  return n == value.size();
}

int Fill(const MasterInfo& info, pgherald_master_info* out) {
  std::memset(out, 0, sizeof *out);
  out->status = ToC(info.status);
  bool fits = CopyField(out->cluster, info.cluster);
  fits = CopyField(out->node, info.node) && fits;
  fits = CopyField(out->host, info.host) && fits;
  out->port = info.port;
  out->timeline = info.timeline;
  out->epoch = info.epoch;
  out->vouchers = info.vouchers;
  out->mzxid = info.mzxid;
  if (info.confirmed_at == std::chrono::steady_clock::time_point{}) {
    out->age_ms = -1;
  } else {
    out->age_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - info.confirmed_at)
                      .count();
  }
  out->truncated = fits ? 0 : 1;
  out->writable = (info.writable() && fits) ? 1 : 0;
  return fits ? 0 : -1;
}

void WriteError(char* buf, size_t len, const std::string& message) {
  if (buf == nullptr || len == 0) return;
  const size_t n = message.size() < len ? message.size() : len - 1;
  std::memcpy(buf, message.data(), n);
  buf[n] = '\0';
}

}  // namespace

namespace pgherald::client::internal {
pgherald_watch* WrapForC(std::unique_ptr<MasterWatch> watch) {
  return new pgherald_watch{std::move(watch)};
}
}  // namespace pgherald::client::internal

extern "C" {

const char* pgherald_status_name(pgherald_status status) {
  switch (status) {
    case PGHERALD_VOUCHED: return "vouched";
    case PGHERALD_UNVERIFIED: return "unverified";
    case PGHERALD_NO_MASTER: return "no-master";
    case PGHERALD_DISCONNECTED: return "disconnected";
  }
  return "unknown";
}

void pgherald_watch_options_init(pgherald_watch_options* options) {
  if (options != nullptr) std::memset(options, 0, sizeof *options);
}

pgherald_watch* pgherald_watch_start(const pgherald_watch_options* options, char* errbuf,
                                     size_t errbuf_len) {
  try {
    if (options == nullptr) {
      WriteError(errbuf, errbuf_len, "options is NULL: fill a pgherald_watch_options");
      return nullptr;
    }
    pgherald::client::MasterWatchOptions o;
    o.zk_connect = options->zk_connect != nullptr ? options->zk_connect : "";
    if (options->root != nullptr) o.root = options->root;
    o.cluster = options->cluster != nullptr ? options->cluster : "";
    if (options->session_timeout_ms > 0) {
      o.session_timeout = std::chrono::milliseconds(options->session_timeout_ms);
    }
    if (options->zk_auth != nullptr) o.zk_auth = options->zk_auth;
    if (options->log != nullptr) {
      pgherald_log_fn fn = options->log;
      void* user = options->log_user_data;
      o.log = [fn, user](int level, const std::string& line) { fn(user, level, line.c_str()); };
    }
    std::string error;
    auto watch = pgherald::client::MasterWatch::Start(o, &error);
    if (!watch) {
      WriteError(errbuf, errbuf_len, error);
      return nullptr;
    }
    return new pgherald_watch{std::move(watch)};
  } catch (const std::exception& e) {
    WriteError(errbuf, errbuf_len, std::string("pgherald_watch_start failed: ") + e.what());
    return nullptr;
  }
}

void pgherald_watch_stop(pgherald_watch* watch) { delete watch; }

int pgherald_watch_current(const pgherald_watch* watch, pgherald_master_info* out) {
  if (watch == nullptr || out == nullptr) return -1;
  try {
    return Fill(watch->watch->current(), out);
  } catch (const std::exception&) {
    return -1;
  }
}

void pgherald_watch_set_callback(pgherald_watch* watch, pgherald_change_fn fn, void* user_data) {
  if (watch == nullptr) return;
  try {
    if (fn == nullptr) {
      watch->watch->OnChange(nullptr);
      return;
    }
    watch->watch->OnChange([fn, user_data](const MasterInfo& info) {
      pgherald_master_info c;
      Fill(info, &c);
      fn(&c, user_data);
    });
  } catch (const std::exception&) {
    // Out of memory: the earlier callback stays.
  }
}

int pgherald_watch_wait_status(pgherald_watch* watch, pgherald_status status, int timeout_ms) {
  if (watch == nullptr) return 0;
  try {
    return watch->watch->WaitFor(
               [status](const MasterInfo& info) { return ToC(info.status) == status; },
               std::chrono::milliseconds(timeout_ms > 0 ? timeout_ms : 0))
               ? 1
               : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

size_t pgherald_master_conninfo(const pgherald_master_info* info, const char* extra, char* buf,
                                size_t buf_len) {
  std::string out;
  if (info != nullptr && info->writable && !info->truncated) {
    try {
      MasterInfo m;
      m.status = MasterStatus::kVouched;
      m.host = info->host;
      m.port = info->port;
      out = pgherald::client::MasterConninfo(m, extra != nullptr ? extra : "");
    } catch (const std::exception&) {
      out.clear();
    }
  }
  if (buf != nullptr && buf_len > 0) {
    const size_t n = out.size() < buf_len ? out.size() : buf_len - 1;
    std::memcpy(buf, out.data(), n);
    buf[n] = '\0';
  }
  return out.size();
}

}  // extern "C"
