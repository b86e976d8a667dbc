/* libpgherald's C API: follow the verified master of a pgherald cluster from any language.
 *
 * Public, installed header; plain C (C89 types plus <stdint.h>/<stddef.h>), usable from C++.
 * A thin layer over pgherald::client::MasterWatch (<pgherald/master_watch.h>): same states, same
 * threads, same guarantees. Link with `pkg-config --libs pgherald` or CMake's pgherald::client.
 *
 * Threads: the change callback runs on one of the library's threads (usually the ZooKeeper
 * client's completion thread), one call at a time and in order, never on the caller's thread; it
 * must return quickly and must not call pgherald_watch_stop on its own handle. Every other
 * function may be called from any thread.
 *
 * Memory: the library never keeps a pointer the caller passed in (strings are copied) and never
 * hands out memory the caller must free, except the handle (pgherald_watch_stop frees it).
 */
#ifndef PGHERALD_MASTER_WATCH_C_H_
#define PGHERALD_MASTER_WATCH_C_H_

#include <stddef.h>
#include <stdint.h>

#ifndef PGHERALD_API
#define PGHERALD_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Same meaning as pgherald::client::MasterStatus. */
typedef enum pgherald_status {
  PGHERALD_VOUCHED = 0,      /* a master is published and vouched for by a voucher bound to the
                                exact record (re-affirmed since any reconnect): writes are safe */
  PGHERALD_UNVERIFIED = 1,   /* no verified master now (no bound voucher, corrupt or deleted
                                record, reconnect not yet re-affirmed); the fields are the last
                                VERIFIED master's, never the unverified record's */
  PGHERALD_NO_MASTER = 2,    /* no master is published */
  PGHERALD_DISCONNECTED = 3  /* ZooKeeper unreachable; the last master is kept, see age_ms */
} pgherald_status;

/* "vouched", "unverified", "no-master", "disconnected" (static storage). */
PGHERALD_API const char* pgherald_status_name(pgherald_status status);

#define PGHERALD_NAME_MAX 256 /* buffer size of the string fields below, NUL included */

typedef struct pgherald_master_info {
  pgherald_status status;
  int writable; /* 1 only when status is PGHERALD_VOUCHED */
  char cluster[PGHERALD_NAME_MAX];
  char node[PGHERALD_NAME_MAX]; /* VOUCHED: the record's master; UNVERIFIED, DISCONNECTED: the
                                   last verified master; "" if none was ever verified */
  char host[PGHERALD_NAME_MAX];
  int port;
  uint32_t timeline;
  uint64_t epoch;
  int vouchers; /* vouchers bound to the record read; others are not counted */
  int64_t mzxid;
  /* Milliseconds since ZooKeeper last confirmed this state; -1 if it never did. */
  int64_t age_ms;
  /* 1 if a string did not fit its buffer; writable is then forced to 0. */
  int truncated;
} pgherald_master_info;

typedef void (*pgherald_log_fn)(void* user_data, int level, const char* line);

typedef struct pgherald_watch_options {
  const char* zk_connect; /* "host:port,host:port"; required */
  const char* root;       /* NULL: "/pgherald" */
  const char* cluster;    /* required */
  int session_timeout_ms; /* <= 0: 6000 */
  const char* zk_auth;    /* NULL or "user:password"; never logged */
  /* Log lines (level 0 debug, 1 info, 2 warn, 3 error), on any library thread; NULL discards. */
  pgherald_log_fn log;
  void* log_user_data;
} pgherald_watch_options;

/* Fills *options with the defaults (everything NULL/0). */
PGHERALD_API void pgherald_watch_options_init(pgherald_watch_options* options);

typedef struct pgherald_watch pgherald_watch; /* opaque */

/* Starts watching. Returns NULL on bad options, with the reason in errbuf (if errbuf_len > 0).
 * An unreachable ZooKeeper is not an error: the status stays PGHERALD_DISCONNECTED. */
PGHERALD_API pgherald_watch* pgherald_watch_start(const pgherald_watch_options* options,
                                                  char* errbuf, size_t errbuf_len);

/* Stops watching, closes the session and frees the handle. NULL is ignored. Must not be called
 * from the handle's own callback. After it returns no callback of this handle runs. */
PGHERALD_API void pgherald_watch_stop(pgherald_watch* watch);

/* Copies the current state into *out. Returns 0, or -1 if a string was truncated (see
 * pgherald_master_info.truncated). */
PGHERALD_API int pgherald_watch_current(const pgherald_watch* watch, pgherald_master_info* out);

/* Called with the new state after every change; `info` is valid during the call only.
 * Replaces an earlier callback; fn NULL removes it. */
typedef void (*pgherald_change_fn)(const pgherald_master_info* info, void* user_data);
PGHERALD_API void pgherald_watch_set_callback(pgherald_watch* watch, pgherald_change_fn fn,
                                              void* user_data);

/* Blocks until the status equals `status` or timeout_ms passes. Returns 1 if it did, else 0. */
PGHERALD_API int pgherald_watch_wait_status(pgherald_watch* watch, pgherald_status status,
                                            int timeout_ms);

/* Writes the libpq connection string for `info`'s master ("host=... port=..." plus " " + extra if
 * extra is non-NULL and non-empty) into buf, NUL-terminated, like snprintf. Returns the length
 * of the full string (excluding the NUL): if it is >= buf_len the output was cut. Returns 0 and
 * writes "" when the master is not writable. */
PGHERALD_API size_t pgherald_master_conninfo(const pgherald_master_info* info, const char* extra,
                                             char* buf, size_t buf_len);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* PGHERALD_MASTER_WATCH_C_H_ */
