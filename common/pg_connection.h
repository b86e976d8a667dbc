// A PostgreSQL connection over libpq: one owner of <libpq-fe.h>, typed result rows, and errors
// mapped onto StatusCode with messages that name the server and never carry a password.
//
// Typical use (the poller reads everything it needs in one round trip per tick):
//
//   auto conn = pg::PgConnection::Connect(params);
//   if (!conn.ok()) return conn.status();          // kUnavailable, kPermissionDenied, ...
//   auto result = (*conn)->Exec("SELECT pg_is_in_recovery() AS in_recovery, $1::int AS n", {"7"});
//   if (!result.ok()) return result.status();      // kTimeout on statement_timeout, ...
//   auto in_recovery = result->row(0).GetBool("in_recovery");
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"

struct pg_conn;  // PGconn, from <libpq-fe.h>

namespace pgherald::pg {

struct PgParams {
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string user;
  std::string dbname;  // empty: libpq's default, the user name
  // Unset: libpq may still find one in PGPASSWORD or ~/.pgpass. Never logged, never in a Status.
  std::optional<std::string> password;
  // Enforced by PgConnection itself with millisecond precision (libpq's own is whole seconds).
  Millis connect_timeout{5000};
  // Sent as `options='-c statement_timeout=N'`, so it holds from the first statement. Zero: none.
  Millis statement_timeout{5000};
  std::string application_name = "pgherald";
  // Further libpq keywords (sslmode, channel_binding, keepalives, ...). Reserved keywords
  // (CheckOptionKeyword) are rejected by Connect(); an "options" entry is kept and the timeout
  // appended.
  std::map<std::string, std::string> options;
  // Send no password at all, whatever the server asks: not `password`, not PGPASSWORD, not a
  // passfile (~/.pgpass). For servers that are not proven to be who they claim (a node learned from
  // ZooKeeper): libpq 15 answers a cleartext password request from any server.
  bool withhold_password = false;

  // "host:port/dbname as user": for messages and logs.
  std::string Describe() const;
};

// Whether `key` may appear in PgParams::options. kInvalidArgument with the reason otherwise:
//   - keywords PgParams sets itself (host, hostaddr, port, user, dbname, password, passfile,
//     connect_timeout, application_name): they have their own setting;
//   - keywords that would send the connection elsewhere or change what it is (service: a
//     pg_service.conf entry may supply host, user and password; replication; target_session_attrs
//     and load_balance_hosts: pgherald decides roles itself);
//   - anything this libpq does not know (libpq would refuse it at every connect).
Status CheckOptionKeyword(std::string_view key);

// True when `params` make libpq authenticate the server before it answers any password request:
// sslmode=verify-full (certificate and host name) or channel_binding=require (SCRAM-SHA-256-PLUS
// only, so a cleartext or md5 request is refused).
bool AuthenticatesServer(const PgParams& params);

// The libpq conninfo string for `params`: space-separated key='value' pairs with ' and \ escaped,
// so any value (spaces, quotes, an empty password) survives. It contains the password: never log
// it; log RedactedConninfo() instead.
std::string BuildConninfo(const PgParams& params);
// BuildConninfo() with the password replaced by "***".
std::string RedactedConninfo(const PgParams& params);

// `message` with the password of `params` (and anything RedactSecrets() recognises) replaced by
// "***". Every Status that PgConnection returns has been through it.
std::string ScrubSecrets(std::string_view message, const PgParams& params);

// Parses a libpq conninfo string ("host=... port=..." or a postgresql:// URI), e.g. from
// repmgr.nodes.conninfo. Keywords with a field in PgParams go there (connect_timeout in seconds
// becomes milliseconds); the rest go to `options`. Fields the string leaves out keep the values of
// `defaults`. Errors are kInvalidArgument and never echo the string (it may hold a password).
StatusOr<PgParams> ParseConninfo(std::string_view conninfo, const PgParams& defaults = {});

// The cells of one result row, read by column name or index. Every accessor checks the column
// exists, is not NULL (unless an optional is asked for) and parses as the type; otherwise it
// returns kInvalidArgument naming the column, e.g. `column "timeline": expected an integer, got
// "x"`. A Row is a view: it must not outlive its PgResult.
class PgResult;
class Row {
 public:
  // T is one of std::string, int64_t, int32_t, double, bool (text 't'/'f'), or std::optional of
  // one of them (NULL becomes std::nullopt).
  template <typename T>
  StatusOr<T> Get(std::string_view column) const;
  template <typename T>
  StatusOr<T> Get(int column) const;

  StatusOr<std::string> GetString(std::string_view column) const {
    return Get<std::string>(column);
  }
  StatusOr<int64_t> GetInt64(std::string_view column) const { return Get<int64_t>(column); }
  StatusOr<int32_t> GetInt32(std::string_view column) const { return Get<int32_t>(column); }
  StatusOr<double> GetDouble(std::string_view column) const { return Get<double>(column); }
  StatusOr<bool> GetBool(std::string_view column) const { return Get<bool>(column); }
  // False when the column is absent, too.
  bool IsNull(std::string_view column) const;

 private:
  friend class PgResult;
  Row(const PgResult* result, int index) : result_(result), index_(index) {}
  const PgResult* result_;
  int index_;
};

// A copied, self-contained result in text format. Copyable; cheap at the sizes we read.
class PgResult {
 public:
  PgResult() = default;
  PgResult(std::vector<std::string> columns, std::vector<std::optional<std::string>> cells,
           int64_t affected_rows);

  int num_rows() const {
    return columns_.empty() ? 0 : static_cast<int>(cells_.size() / columns_.size());
  }
  int num_columns() const { return static_cast<int>(columns_.size()); }
  const std::vector<std::string>& columns() const { return columns_; }
  // -1 when absent.
  int ColumnIndex(std::string_view name) const;
  // Requires 0 <= index < num_rows().
  Row row(int index) const { return Row(this, index); }
  std::vector<Row> rows() const;
  // Rows touched by INSERT/UPDATE/DELETE (PQcmdTuples); -1 for other statements.
  int64_t affected_rows() const { return affected_rows_; }

 private:
  friend class Row;
  const std::optional<std::string>& cell(int row, int column) const {
    return cells_[static_cast<size_t>(row) * columns_.size() + static_cast<size_t>(column)];
  }
  std::vector<std::string> columns_;
  std::vector<std::optional<std::string>> cells_;  // row-major
  int64_t affected_rows_ = -1;
};

// One connection to one server. Not thread-safe: use it from one thread at a time. Move-only.
//
// Error mapping, for Connect() and Exec*() alike:
//   kUnavailable        refused, unreachable, connect timeout, server shutting down or starting,
//                       too many connections, connection lost mid-statement (the statement's
//                       outcome is then unknown: a COMMIT may have happened)
//   kPermissionDenied   authentication failed, no pg_hba.conf entry, SQLSTATE class 28, 42501
//   kTimeout            SQLSTATE 57014 (statement_timeout, or a cancel), or no answer at all within
//                       statement_timeout + connect_timeout (a frozen server)
//   kNotFound           undefined table, column, function, schema or object (42P01, 42703, 42883,
//                       3F000, 42704): lets callers probe for an optional schema
//   kFailedPrecondition read-only transaction (25006, e.g. a write on a standby), an aborted
//                       transaction (25P02), integrity or serialization failures (classes 23, 40),
//                       a missing database (3D000)
//   kInternal           anything else (syntax errors, bad parameters)
// Every message starts with Describe() ("host:port/db as user") and, for server errors, ends with
// "[SQLSTATE xxxxx]". Messages are scrubbed of the password, whatever libpq says.
//
// After kUnavailable or kTimeout from Exec*() the connection may be closed (ok() is false): drop it
// and Connect() again.
class PgConnection {
 public:
  // Connects with a client-side deadline of params.connect_timeout; on success the session already
  // runs with params.statement_timeout.
  static StatusOr<std::unique_ptr<PgConnection>> Connect(const PgParams& params);

  ~PgConnection();
  PgConnection(PgConnection&&) noexcept;
  PgConnection& operator=(PgConnection&&) noexcept;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // One statement through the extended protocol (PQexecParams), text results. `params` fill $1..$n;
  // std::nullopt is NULL. Types are inferred by the server: cast in SQL when it cannot tell
  // ($1::int).
  StatusOr<PgResult> Exec(std::string_view sql,
                          const std::vector<std::optional<std::string>>& params = {});

  // Several ;-separated statements in one round trip through the simple protocol (no parameters),
  // one PgResult per statement, in order. Without an explicit BEGIN they run as one implicit
  // transaction; the first error stops the batch and is returned. If the batch began a transaction
  // and failed inside it, it is rolled back, so the session stays usable.
  StatusOr<std::vector<PgResult>> ExecBatch(std::string_view sql);

  // --- Non-blocking use: one thread multiplexing many connections over poll(2) -----------------
  // (orchestrator/probe.cc). The blocking calls above are these plus a wait on the socket.
  enum class Wait { kNone, kRead, kWrite };

  // Starts connecting (PQconnectStart) without waiting: wait for socket() to be writable, then
  // call PollConnect() each time the socket is ready for what it returned, until kNone (connected;
  // ok() is true). libpq enforces no timeout here: the caller does, calling ConnectTimedOut().
  // libpq resolves a host NAME inside this call (getaddrinfo, blocking); an address does not block.
  static StatusOr<std::unique_ptr<PgConnection>> StartConnect(const PgParams& params);
  // Errors are Connect()'s; the connection is closed then.
  StatusOr<Wait> PollConnect();
  // Closes a connect that ran out of time; returns Connect()'s timeout error (kUnavailable).
  Status ConnectTimedOut();
  // The socket to poll (it may change while connecting); -1 when closed.
  int socket() const;

  // Sends ;-separated statements through the simple protocol (as ExecBatch) without waiting.
  Status SendBatch(std::string_view sql);
  // Reads what the socket holds without blocking. std::nullopt while the answer is incomplete
  // (wait for the socket to be readable and call again); then the results, one per statement, or
  // the first error, mapped as ExecBatch's. Unlike ExecBatch, a batch that failed inside a
  // transaction it began is not rolled back: see in_failed_transaction().
  StatusOr<std::optional<std::vector<PgResult>>> ReceiveResults(std::string_view what);
  // True inside a failed transaction block: send ROLLBACK before anything else.
  bool in_failed_transaction() const;
  // How long the client waits for an answer before it gives up on the server (closes the
  // connection): statement_timeout + max(connect_timeout, 1 s); zero (no limit) without a
  // statement_timeout.
  Millis answer_timeout() const;
  // Closes a connection whose answer did not come within answer_timeout(); returns the kTimeout
  // error the blocking calls return then. The backend notices the closed socket and ends the
  // statement (PQcancel would block, and libpq 15 has no non-blocking cancel).
  Status AnswerTimedOut(std::string_view what);

  // An idle connection's socket became readable: reads what it holds without blocking (the FATAL
  // a backend sends before it ends the session, or a ParameterStatus after a reload). False when
  // the server has closed the connection (ok() is false then).
  bool ConsumeIdleInput();
  // False once the connection is known to be broken or was closed after a timeout.
  bool ok() const;
  // The SQLSTATE of the last failed Exec*(), "" after a success or a failure with none.
  const std::string& last_sqlstate() const { return last_sqlstate_; }
  // e.g. 150004 for 15.4; 0 when closed.
  int server_version() const;
  // "host:port/dbname as user".
  const std::string& Describe() const { return describe_; }
  const PgParams& params() const { return params_; }

 private:
  PgConnection(pg_conn* conn, PgParams params);
  // Waits for the pending query's results until the client-side deadline.
  StatusOr<std::vector<PgResult>> CollectResults(std::string_view what);
  Status Fail(StatusCode code, std::string_view what, std::string_view detail);
  Status ConnectFailed(std::string_view detail, std::optional<StatusCode> code = std::nullopt);
  void Close();

  pg_conn* conn_ = nullptr;
  PgParams params_;
  std::string describe_;
  std::string last_sqlstate_;
  // ReceiveResults' partial answer.
  std::vector<PgResult> pending_results_;
  Status pending_error_;
};

// The StatusCode for a SQLSTATE, per the table above (exposed for tests and for callers that map
// SQLSTATEs they read elsewhere, e.g. from repmgr's logs).
StatusCode CodeForSqlState(std::string_view sqlstate);

}  // namespace pgherald::pg
