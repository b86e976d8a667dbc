// What a consumer makes of one read of clients/<c>/master (docs/zookeeper-contract.md, "Rules for
// consumers"). One implementation for every reader that routes: the library's MasterWatch (which
// `pgherald watch` uses too). Pure logic over what ZooKeeper answered (hostile input).
//
//   - Only vouchers BOUND to the record count (model::BoundVouchers: the name carries the
//     record's epoch and the digest of its exact bytes). Legacy, replayed, foreign or garbage
//     children bind nothing.
//   - A record with a bound voucher is kVouched, with its own fields.
//   - Anything else that names a master -- a record with no bound voucher, a payload that does
//     not decode, a deleted master znode after a master was known -- is kUnverified and carries
//     the LAST VERIFIED master's fields (node, host, port, timeline, epoch), never the fields of
//     the unverified record: a consumer never takes a new master from it.
//   - A "no-master" record (or the empty initial one) is kNoMaster.
//   - After an interruption of the reader's session (disconnect, expiry), a bound record counts
//     as vouched only once a bound voucher's mzxid is above everything the first read after the
//     reconnect saw (AffirmGate): a re-affirmation, or a new record and voucher, made after the
//     interruption.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/zk/zk_session.h"
#include "pgherald/master_watch.h"

namespace pgherald::client::internal {

// One read: the master znode's data and Stat (Get) and its children's names (GetChildren sent
// after the Get, so the names are never older than the data).
struct MasterRead {
  bool exists = false;
  std::string data;
  zk::Stat stat;
  std::vector<std::string> children;
};

struct Judgement {
  enum class Kind {
    kAbsent,      // no master znode
    kUnreadable,  // the payload does not decode (error says why)
    kNoMaster,    // a no-master record (or the empty initial one)
    kBound,       // a master record with >= 1 bound voucher (bound names them)
    kUnbound,     // a master record no child binds (unbound counts the children that bind nothing)
  };
  Kind kind = Kind::kAbsent;
  std::optional<model::MasterRecord> record;  // kNoMaster, kBound, kUnbound
  Status error = Status::Ok();                // kUnreadable
  std::vector<std::string> bound;             // the bound vouchers' names
  int unbound = 0;                            // children that bind nothing
};
const char* JudgementName(Judgement::Kind kind);  // "absent", "unreadable", "no-master", ...

Judgement JudgeRead(const MasterRead& read);

// The state to report for `judged`, read at `mzxid`. `last_verified`: the last kVouched state
// reported (nullopt: none yet). `affirmed`: AffirmGate's verdict (true when no interruption is
// pending). confirmed_at is left to the caller.
MasterInfo StateFor(const std::string& cluster, const Judgement& judged, std::int64_t mzxid,
                    const std::optional<MasterInfo>& last_verified, bool affirmed);

// "A voucher means verified now": after an interruption of the reader's session, the first
// successful read sets a baseline (the highest zxid it saw: the master znode's mzxid and pzxid
// and the bound vouchers' mzxids) and is not affirmed; a later read is affirmed once a bound
// voucher's mzxid is above the baseline -- written after that first read, so after the
// reconnect. Until then the reader must watch the bound vouchers' data (needs_voucher_stats()).
class AffirmGate {
 public:
  // The session was disconnected or replaced. Ignored before the first successful read (a
  // starting reader has nothing to protect).
  void Interrupted();
  // Whether the next read must carry the bound vouchers' Stat (and arm data watches on them).
  bool needs_voucher_stats() const { return phase_ != Phase::kOpen; }
  // Feeds one successful, applied read; returns whether a bound record is affirmed.
  bool Affirmed(const zk::Stat& master, const std::vector<std::int64_t>& bound_voucher_mzxids);
  bool waiting() const { return phase_ != Phase::kOpen; }

 private:
  enum class Phase { kOpen, kBaseline, kWaiting };
  Phase phase_ = Phase::kOpen;
  bool read_once_ = false;
  std::int64_t baseline_ = 0;
};

}  // namespace pgherald::client::internal
