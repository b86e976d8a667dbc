#include "common/pg_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <limits>
#include <type_traits>

#include "common/logging.h"

namespace pgherald::pg {
namespace {

// Keywords that PgParams carries in its own fields; BuildConninfo() writes them.
constexpr const char* kOwnKeywords[] = {"host",     "port",     "user",
                                        "dbname",   "password", "connect_timeout",
                                        "hostaddr", "passfile", "application_name"};
// Keywords that would redirect the connection, pull credentials from elsewhere or change what the
// session is (see CheckOptionKeyword).
constexpr const char* kRedirectingKeywords[] = {"service", "replication", "target_session_attrs",
                                                "load_balance_hosts"};
// Where a withheld password is looked up: a path that cannot exist, so that libpq finds no
// passfile (an explicit empty password alone would still make it read ~/.pgpass).
constexpr char kNoPassfile[] = "/nonexistent/pgherald-withheld-password/.pgpass";

bool IsOwnKeyword(std::string_view key) {
  return std::find(std::begin(kOwnKeywords), std::end(kOwnKeywords), key) != std::end(kOwnKeywords);
}

bool IsLibpqKeyword(std::string_view word) {
  PQconninfoOption* defaults = PQconndefaults();
  bool found = false;
  for (PQconninfoOption* o = defaults; o != nullptr && o->keyword != nullptr; ++o) {
    if (word == o->keyword) found = true;
  }
  if (defaults != nullptr) PQconninfoFree(defaults);
  return found;
}

void AppendPair(std::string* out, std::string_view key, std::string_view value) {
  if (!out->empty()) out->push_back(' ');
  out->append(key);
  out->append("='");
  for (char c : value) {
    if (c == '\'' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('\'');
}

std::string Conninfo(const PgParams& p, bool redact) {
  std::string out;
  AppendPair(&out, "host", p.host);
  AppendPair(&out, "port", std::to_string(p.port));
  if (!p.user.empty()) AppendPair(&out, "user", p.user);
  if (!p.dbname.empty()) AppendPair(&out, "dbname", p.dbname);
  if (p.withhold_password) {
    // An explicit empty password keeps PGPASSWORD out; the passfile that cannot exist keeps
    // ~/.pgpass out. libpq then answers any password request with "no password supplied".
    AppendPair(&out, "password", "");
    AppendPair(&out, "passfile", kNoPassfile);
  } else if (p.password) {
    AppendPair(&out, "password", redact ? "***" : *p.password);
  }
  if (p.connect_timeout.count() > 0) {
    // libpq's own unit is whole seconds, minimum 2; PgConnection enforces the exact value itself.
    int64_t seconds = std::max<int64_t>(2, (p.connect_timeout.count() + 999) / 1000);
    AppendPair(&out, "connect_timeout", std::to_string(seconds));
  }
  if (!p.application_name.empty()) AppendPair(&out, "application_name", p.application_name);
  std::string options;
  for (const auto& [key, value] : p.options) {
    if (key == "options") {
      options = value;
    } else {
      AppendPair(&out, key, value);
    }
  }
  if (p.statement_timeout.count() > 0) {
    if (!options.empty()) options += " ";
    options += "-c statement_timeout=" + std::to_string(p.statement_timeout.count());
  }
  if (!options.empty()) AppendPair(&out, "options", options);
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// libpq's messages are multi-line ("...failed: Connection refused\n\tIs the server running...").
std::string OneLine(std::string_view message) {
  std::string out;
  bool pending_separator = false;
  for (char c : message) {
    if (c == '\n' || c == '\r' || c == '\t') {
      pending_separator = !out.empty();
      continue;
    }
    if (pending_separator) {
      if (out.back() != ' ') out += "; ";
      pending_separator = false;
    }
    out.push_back(c);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

// For failures to establish a session. libpq has no SQLSTATE there, so this reads the text:
// client-side texts are English unless the process sets a locale; server-side ones follow the
// server's lc_messages (English in our deployments and labs).
StatusCode CodeForConnectError(std::string_view message) {
  const std::string m = Lower(message);
  for (const char* auth : {"password authentication failed", "authentication failed",
                           "no password supplied", "pg_hba.conf", "permission denied",
                           "not permitted to log in", "role \"", "password is required"}) {
    if (Contains(m, auth)) return StatusCode::kPermissionDenied;
  }
  if (Contains(m, "database \"") && Contains(m, "does not exist")) {
    return StatusCode::kFailedPrecondition;
  }
  for (const char* down : {"connection refused",
                           "could not connect",
                           "timeout expired",
                           "timed out",
                           "no route to host",
                           "network is unreachable",
                           "could not translate host name",
                           "server closed the connection",
                           "the database system is",
                           "too many clients",
                           "too many connections",
                           "connection reset",
                           "could not receive data",
                           "could not send data",
                           "host is down",
                           "is the server running",
                           "server is not",
                           "no connection to the server",
                           "eof detected",
                           "terminating connection"}) {
    if (Contains(m, down)) return StatusCode::kUnavailable;
  }
  return StatusCode::kInternal;
}

// Waits until `fd` is readable (or writable). Returns false when `deadline` passed first.
// A poll() failure other than EINTR counts as ready, so libpq reports the real error.
bool WaitSocket(int fd, bool for_write,
                std::optional<std::chrono::steady_clock::time_point> deadline) {
  pollfd pfd{};
  pfd.fd = fd;
  pfd.events = for_write ? POLLOUT : POLLIN;
  while (true) {
    int timeout_ms = -1;
    if (deadline) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline -
                                                               std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      timeout_ms =
          static_cast<int>(std::min<int64_t>(left.count(), std::numeric_limits<int>::max()));
    }
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc > 0) return true;
    if (rc == 0) continue;  // re-check the deadline: poll may wake a little early
    if (errno != EINTR) return true;
  }
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

PgResult CopyResult(const PGresult* r) {
  const int rows = PQntuples(r);
  const int cols = PQnfields(r);
  std::vector<std::string> columns;
  columns.reserve(static_cast<size_t>(cols));
  for (int c = 0; c < cols; ++c) columns.emplace_back(PQfname(r, c));
  std::vector<std::optional<std::string>> cells;
  cells.reserve(static_cast<size_t>(rows) * static_cast<size_t>(cols));
  for (int row = 0; row < rows; ++row) {
    for (int c = 0; c < cols; ++c) {
      if (PQgetisnull(r, row, c)) {
        cells.emplace_back(std::nullopt);
      } else {
        cells.emplace_back(
            std::string(PQgetvalue(r, row, c), static_cast<size_t>(PQgetlength(r, row, c))));
      }
    }
  }
  int64_t affected = -1;
  const char* tuples = PQcmdTuples(const_cast<PGresult*>(r));
  if (tuples != nullptr && *tuples != '\0') {
    std::from_chars(tuples, tuples + std::char_traits<char>::length(tuples), affected);
  }
  return PgResult(std::move(columns), std::move(cells), affected);
}

// Hides the password in anything libpq or the server hands back, whatever the wording.
std::string Scrub(std::string_view message, const PgParams& params) {
  std::string out = log::RedactSecrets(message);
  if (params.password && !params.password->empty()) {
    const std::string& pw = *params.password;
    for (size_t at = out.find(pw); at != std::string::npos; at = out.find(pw, at + 3)) {
      out.replace(at, pw.size(), "***");
    }
  }
  return out;
}

// --- Typed cells ---------------------------------------------------------------------------------

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {
  using type = T;
};

std::string QuoteCell(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out = "\"" + std::string(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return out + "\"";
}

template <typename T>
StatusOr<T> ParseCell(const std::string& column, const std::string& text) {
  auto bad = [&](const char* expected) {
    return InvalidArgument("column \"" + column + "\": expected " + expected + ", got " +
                           QuoteCell(text));
  };
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "t" || text == "true") return true;
    if (text == "f" || text == "false") return false;
    return bad("a boolean (t or f)");
  } else if constexpr (std::is_integral_v<T>) {
    T v{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc::result_out_of_range) {
      return bad(std::is_same_v<T, int32_t> ? "a 32-bit integer" : "a 64-bit integer");
    }
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return bad("an integer");
    }
    return v;
  } else if constexpr (std::is_same_v<T, double>) {
    double v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return bad("a number");
    }
    return v;
  } else {
    static_assert(!sizeof(T), "unsupported column type");
  }
}

}  // namespace

std::string PgParams::Describe() const {
  return host + ":" + std::to_string(port) + "/" + (dbname.empty() ? user : dbname) + " as " + user;
}

std::string BuildConninfo(const PgParams& params) { return Conninfo(params, false); }
std::string RedactedConninfo(const PgParams& params) { return Conninfo(params, true); }

std::string ScrubSecrets(std::string_view message, const PgParams& params) {
  return Scrub(message, params);
}

StatusOr<PgParams> ParseConninfo(std::string_view conninfo, const PgParams& defaults) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(conninfo).c_str(), &error);
  if (options == nullptr) {
    // libpq quotes the offending fragment, which may be part of a password: keep a quoted
    // fragment only when it is "=" or a libpq keyword.
    std::string detail = error != nullptr ? OneLine(error) : "out of memory";
    if (error != nullptr) PQfreemem(error);
    std::string cleaned;
    for (size_t pos = 0; pos < detail.size();) {
      size_t open = detail.find('"', pos);
      size_t close = open == std::string::npos ? open : detail.find('"', open + 1);
      if (close == std::string::npos) {
        cleaned += detail.substr(pos);
        break;
      }
      std::string fragment = detail.substr(open + 1, close - open - 1);
      cleaned += detail.substr(pos, open + 1 - pos);
      cleaned += fragment == "=" || IsLibpqKeyword(fragment) ? fragment : "...";
      cleaned += '"';
      pos = close + 1;
    }
    return InvalidArgument("invalid conninfo: " + cleaned);
  }
  PgParams p = defaults;
  Status status;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view key = o->keyword;
    std::string value = o->val;
    if (key == "host") {
      p.host = value;
    } else if (key == "port") {
      int port = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc() || end != value.data() + value.size() || port < 1 || port > 65535) {
        status = InvalidArgument("invalid conninfo: port must be 1..65535, got \"" + value + "\"");
        break;
      }
      p.port = port;
    } else if (key == "user") {
      p.user = value;
    } else if (key == "dbname") {
      p.dbname = value;
    } else if (key == "password") {
      p.password = value;
    } else if (key == "connect_timeout") {
      int seconds = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc() || end != value.data() + value.size() || seconds < 0) {
        status = InvalidArgument("invalid conninfo: connect_timeout must be whole seconds, got \"" +
                                 value + "\"");
        break;
      }
      p.connect_timeout = Millis(int64_t{seconds} * 1000);
    } else if (key == "application_name") {
      p.application_name = value;
    } else {
      p.options[std::string(key)] = value;
    }
  }
  PQconninfoFree(options);
  if (!status.ok()) return status;
  return p;
}

StatusCode CodeForSqlState(std::string_view s) {
  if (s == "57014") return StatusCode::kTimeout;
  if (s == "42501" || s.starts_with("28")) return StatusCode::kPermissionDenied;
  if (s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03" || s == "53300") {
    return StatusCode::kUnavailable;
  }
  if (s == "42P01" || s == "42703" || s == "42883" || s == "3F000" || s == "42704") {
    return StatusCode::kNotFound;
  }
  if (s == "25006" || s == "25P02" || s == "3D000" || s.starts_with("23") || s.starts_with("40")) {
    return StatusCode::kFailedPrecondition;
  }
  return StatusCode::kInternal;
}

// --- PgResult and Row ----------------------------------------------------------------------------

PgResult::PgResult(std::vector<std::string> columns, std::vector<std::optional<std::string>> cells,
                   int64_t affected_rows)
    : columns_(std::move(columns)), cells_(std::move(cells)), affected_rows_(affected_rows) {}

int PgResult::ColumnIndex(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<Row> PgResult::rows() const {
  std::vector<Row> out;
  out.reserve(static_cast<size_t>(num_rows()));
  for (int i = 0; i < num_rows(); ++i) out.push_back(row(i));
  return out;
}

template <typename T>
StatusOr<T> Row::Get(int column) const {
  if (index_ < 0 || index_ >= result_->num_rows()) {
    return InvalidArgument("row " + std::to_string(index_) + " out of range (" +
                           std::to_string(result_->num_rows()) + " rows)");
  }
  if (column < 0 || column >= result_->num_columns()) {
    return InvalidArgument("no column #" + std::to_string(column) + " in result (" +
                           std::to_string(result_->num_columns()) + " columns)");
  }
  const std::string& name = result_->columns_[static_cast<size_t>(column)];
  const std::optional<std::string>& cell = result_->cell(index_, column);
  if constexpr (IsOptional<T>::value) {
    if (!cell) return T(std::nullopt);
    auto parsed = ParseCell<typename IsOptional<T>::type>(name, *cell);
    if (!parsed.ok()) return parsed.status();
    return T(std::move(parsed).value());
  } else {
    if (!cell) return InvalidArgument("column \"" + name + "\" is NULL");
    return ParseCell<T>(name, *cell);
  }
}

template <typename T>
StatusOr<T> Row::Get(std::string_view column) const {
  int index = result_->ColumnIndex(column);
  if (index < 0) {
    std::string names;
    for (const std::string& c : result_->columns()) names += (names.empty() ? "" : ", ") + c;
    return InvalidArgument("no column \"" + std::string(column) +
                           "\" in result (columns: " + names + ")");
  }
  return Get<T>(index);
}

bool Row::IsNull(std::string_view column) const {
  int index = result_->ColumnIndex(column);
  if (index < 0 || index_ < 0 || index_ >= result_->num_rows()) return false;
  return !result_->cell(index_, index).has_value();
}

#define PGHERALD_ROW_INSTANTIATE(T)                                                       \
  template StatusOr<T> Row::Get<T>(std::string_view) const;                               \
  template StatusOr<T> Row::Get<T>(int) const;                                            \
  template StatusOr<std::optional<T>> Row::Get<std::optional<T>>(std::string_view) const; \
  template StatusOr<std::optional<T>> Row::Get<std::optional<T>>(int) const;
PGHERALD_ROW_INSTANTIATE(std::string)
PGHERALD_ROW_INSTANTIATE(int64_t)
PGHERALD_ROW_INSTANTIATE(int32_t)
PGHERALD_ROW_INSTANTIATE(double)
PGHERALD_ROW_INSTANTIATE(bool)
#undef PGHERALD_ROW_INSTANTIATE

Status CheckOptionKeyword(std::string_view key) {
  const std::string quoted = "libpq keyword \"" + std::string(key) + "\"";
  if (IsOwnKeyword(key)) {
    return InvalidArgument(quoted + " is set by pgherald itself: use its own setting (host, port, "
                                    "user, dbname, password_file, connect_timeout_ms, "
                                    "application_name), not options");
  }
  if (std::find(std::begin(kRedirectingKeywords), std::end(kRedirectingKeywords), key) !=
      std::end(kRedirectingKeywords)) {
    return InvalidArgument(quoted + " is not allowed in options: it would redirect the connection, "
                                    "take credentials from elsewhere or change the session's role "
                                    "(pgherald decides roles itself); remove it");
  }
  if (!IsLibpqKeyword(key)) {
    return InvalidArgument(quoted + " is unknown to this libpq (" + std::to_string(PQlibVersion()) +
                           "): libpq would refuse every connection; check the spelling");
  }
  return Status::Ok();
}

bool AuthenticatesServer(const PgParams& params) {
  auto is = [&](const char* key, const char* value) {
    auto it = params.options.find(key);
    return it != params.options.end() && it->second == value;
  };
  return is("sslmode", "verify-full") || is("channel_binding", "require");
}

// --- PgConnection --------------------------------------------------------------------------------

StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const PgParams& params) {
  const auto deadline = std::chrono::steady_clock::now() + params.connect_timeout;
  PGH_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, StartConnect(params));
  // libpq's asynchronous connect: start as if PQconnectPoll had asked to write. The socket may
  // change between steps (libpq tries each address of a host), so it is re-read every time.
  Wait wait = Wait::kWrite;
  while (wait != Wait::kNone) {
    const bool has_deadline = params.connect_timeout.count() > 0;
    if (!WaitSocket(conn->socket(), wait == Wait::kWrite,
                    has_deadline ? std::optional(deadline) : std::nullopt)) {
      return conn->ConnectTimedOut();
    }
    PGH_ASSIGN_OR_RETURN(wait, conn->PollConnect());
  }
  return conn;
}

StatusOr<std::unique_ptr<PgConnection>> PgConnection::StartConnect(const PgParams& params) {
  const std::string where = params.Describe();
  for (const auto& [key, value] : params.options) {
    if (Status s = CheckOptionKeyword(key); !s.ok()) return InvalidArgument(where + ": " + s.message());
  }
  if (params.port < 1 || params.port > 65535) {
    return InvalidArgument(where + ": port must be 1..65535");
  }
  PGconn* raw = PQconnectStart(BuildConninfo(params).c_str());
  if (raw == nullptr) return Internal(where + ": connect failed: libpq is out of memory");
  std::unique_ptr<PgConnection> conn(new PgConnection(raw, params));
  if (PQstatus(raw) == CONNECTION_BAD) return conn->ConnectFailed(PQerrorMessage(raw));
  return conn;
}

Status PgConnection::ConnectFailed(std::string_view detail, std::optional<StatusCode> code) {
  std::string message = OneLine(Scrub(detail, params_));
  Close();
  return Status(code.value_or(CodeForConnectError(message)), describe_ + ": connect failed: " + message);
}

StatusOr<PgConnection::Wait> PgConnection::PollConnect() {
  if (conn_ == nullptr) return ConnectFailed("the connection is closed", StatusCode::kUnavailable);
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_OK:
      return Wait::kNone;
    case PGRES_POLLING_READING:
      return Wait::kRead;
    case PGRES_POLLING_WRITING:
      return Wait::kWrite;
    default:
      return ConnectFailed(PQerrorMessage(conn_));
  }
}

Status PgConnection::ConnectTimedOut() {
  return ConnectFailed("timed out after " + std::to_string(params_.connect_timeout.count()) + " ms",
                       StatusCode::kUnavailable);
}

int PgConnection::socket() const { return conn_ == nullptr ? -1 : PQsocket(conn_); }

bool PgConnection::in_failed_transaction() const {
  return conn_ != nullptr && PQtransactionStatus(conn_) == PQTRANS_INERROR;
}

Millis PgConnection::answer_timeout() const {
  if (params_.statement_timeout.count() <= 0) return Millis(0);
  return std::chrono::duration_cast<Millis>(params_.statement_timeout +
                                            std::max(params_.connect_timeout, Millis(1000)));
}

Status PgConnection::AnswerTimedOut(std::string_view what) {
  Close();
  return Fail(StatusCode::kTimeout, what,
              "no answer from the server within " + std::to_string(answer_timeout().count()) +
                  " ms; connection closed");
}

PgConnection::PgConnection(pg_conn* conn, PgParams params)
    : conn_(conn), params_(std::move(params)), describe_(params_.Describe()) {}

PgConnection::~PgConnection() { Close(); }

PgConnection::PgConnection(PgConnection&& other) noexcept
    : conn_(std::exchange(other.conn_, nullptr)),
      params_(std::move(other.params_)),
      describe_(std::move(other.describe_)),
      last_sqlstate_(std::move(other.last_sqlstate_)),
      pending_results_(std::move(other.pending_results_)),
      pending_error_(std::move(other.pending_error_)) {}

PgConnection& PgConnection::operator=(PgConnection&& other) noexcept {
  if (this != &other) {
    Close();
    conn_ = std::exchange(other.conn_, nullptr);
    params_ = std::move(other.params_);
    describe_ = std::move(other.describe_);
    last_sqlstate_ = std::move(other.last_sqlstate_);
    pending_results_ = std::move(other.pending_results_);
    pending_error_ = std::move(other.pending_error_);
  }
  return *this;
}

void PgConnection::Close() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

bool PgConnection::ConsumeIdleInput() {
  if (conn_ == nullptr) return false;
  if (PQconsumeInput(conn_) == 0) return false;
  return PQstatus(conn_) == CONNECTION_OK;
}

bool PgConnection::ok() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

int PgConnection::server_version() const { return conn_ == nullptr ? 0 : PQserverVersion(conn_); }

Status PgConnection::Fail(StatusCode code, std::string_view what, std::string_view detail) {
  return Status(
      code, describe_ + ": " + std::string(what) + " failed: " + OneLine(Scrub(detail, params_)));
}

StatusOr<PgResult> PgConnection::Exec(std::string_view sql,
                                      const std::vector<std::optional<std::string>>& params) {
  last_sqlstate_.clear();
  if (!ok()) return Fail(StatusCode::kUnavailable, "query", "the connection is closed");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (!PQsendQueryParams(conn_, std::string(sql).c_str(), static_cast<int>(values.size()), nullptr,
                         values.data(), nullptr, nullptr, /*resultFormat=*/0)) {
    std::string error = PQerrorMessage(conn_);
    return Fail(ok() ? StatusCode::kInternal : StatusCode::kUnavailable, "query", error);
  }
  auto results = CollectResults("query");
  if (!results.ok()) return results.status();
  if (results->size() != 1) {
    return Fail(StatusCode::kInternal, "query",
                "expected one result, got " + std::to_string(results->size()));
  }
  return std::move(results->front());
}

StatusOr<std::vector<PgResult>> PgConnection::ExecBatch(std::string_view sql) {
  last_sqlstate_.clear();
  if (!ok()) return Fail(StatusCode::kUnavailable, "batch", "the connection is closed");
  const bool was_idle = PQtransactionStatus(conn_) == PQTRANS_IDLE;
  if (Status sent = SendBatch(sql); !sent.ok()) return sent;
  auto results = CollectResults("batch");
  // A batch that opened a transaction and failed inside it would leave the session unusable
  // ("current transaction is aborted"): the batch is one unit, so end what it began.
  if (!results.ok() && was_idle && ok() && PQtransactionStatus(conn_) == PQTRANS_INERROR) {
    ResultPtr rollback(PQexec(conn_, "ROLLBACK"));
  }
  return results;
}

Status PgConnection::SendBatch(std::string_view sql) {
  last_sqlstate_.clear();
  pending_results_.clear();
  pending_error_ = Status::Ok();
  if (!ok()) return Fail(StatusCode::kUnavailable, "batch", "the connection is closed");
  if (!PQsendQuery(conn_, std::string(sql).c_str())) {
    std::string error = PQerrorMessage(conn_);
    return Fail(ok() ? StatusCode::kInternal : StatusCode::kUnavailable, "batch", error);
  }
  return Status::Ok();
}

StatusOr<std::vector<PgResult>> PgConnection::CollectResults(std::string_view what) {
  // The server enforces statement_timeout; this client-side bound catches a server that cannot
  // answer at all (frozen, partitioned), which would otherwise block the caller forever.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (answer_timeout().count() > 0) deadline = std::chrono::steady_clock::now() + answer_timeout();
  pending_results_.clear();
  pending_error_ = Status::Ok();
  while (true) {
    PGH_ASSIGN_OR_RETURN(std::optional<std::vector<PgResult>> results, ReceiveResults(what));
    if (results.has_value()) return std::move(*results);
    if (!WaitSocket(PQsocket(conn_), false, deadline)) return AnswerTimedOut(what);
  }
}

StatusOr<std::optional<std::vector<PgResult>>> PgConnection::ReceiveResults(std::string_view what) {
  if (conn_ == nullptr) return Fail(StatusCode::kUnavailable, what, "the connection is closed");
  if (PQisBusy(conn_) && !PQconsumeInput(conn_)) {
    Status status = Fail(StatusCode::kUnavailable, what, PQerrorMessage(conn_));
    Close();
    return status;
  }
  while (!PQisBusy(conn_)) {
    ResultPtr result(PQgetResult(conn_));
    if (result == nullptr) break;
    switch (PQresultStatus(result.get())) {
      case PGRES_TUPLES_OK:
      case PGRES_COMMAND_OK:
      case PGRES_EMPTY_QUERY:
        if (pending_error_.ok()) pending_results_.push_back(CopyResult(result.get()));
        break;
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT:
      case PGRES_COPY_BOTH: {
        // COPY is not supported; the protocol state cannot be unwound cheaply, so start afresh.
        Status status = Fail(StatusCode::kInternal, what, "COPY is not supported");
        Close();
        return status;
      }
      default: {
        if (!pending_error_.ok()) break;
        const char* sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY);
        const char* detail = PQresultErrorField(result.get(), PG_DIAG_MESSAGE_DETAIL);
        last_sqlstate_ = sqlstate != nullptr ? sqlstate : "";
        std::string message = primary != nullptr ? primary : PQresultErrorMessage(result.get());
        if (detail != nullptr) message += " (" + std::string(detail) + ")";
        StatusCode code;
        if (!last_sqlstate_.empty()) {
          message += " [SQLSTATE " + last_sqlstate_ + "]";
          code = CodeForSqlState(last_sqlstate_);
        } else {
          // No SQLSTATE: generated by libpq itself, which means the connection failed.
          code = PQstatus(conn_) == CONNECTION_BAD ? StatusCode::kUnavailable
                                                   : CodeForConnectError(message);
        }
        pending_error_ = Fail(code, what, message);
        break;
      }
    }
    if (PQstatus(conn_) == CONNECTION_BAD) break;
  }
  if (PQisBusy(conn_) && PQstatus(conn_) != CONNECTION_BAD) {
    return std::optional<std::vector<PgResult>>();  // more to come
  }
  std::vector<PgResult> results = std::exchange(pending_results_, {});
  Status error = std::exchange(pending_error_, Status::Ok());
  if (!error.ok()) return error;
  if (PQstatus(conn_) == CONNECTION_BAD) {
    return Fail(StatusCode::kUnavailable, what, PQerrorMessage(conn_));
  }
  return std::optional<std::vector<PgResult>>(std::move(results));
}

}  // namespace pgherald::pg
