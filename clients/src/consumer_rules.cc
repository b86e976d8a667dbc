#include "clients/src/consumer_rules.h"

#include <algorithm>

#include "common/model/voucher.h"

namespace pgherald::client::internal {

const char* JudgementName(Judgement::Kind kind) {
  switch (kind) {
    case Judgement::Kind::kAbsent: return "absent";
    case Judgement::Kind::kUnreadable: return "unreadable";
    case Judgement::Kind::kNoMaster: return "no-master";
    case Judgement::Kind::kBound: return "bound";
    case Judgement::Kind::kUnbound: return "unbound";
  }
  return "unknown";
}

namespace {

void SetMaster(MasterInfo& info, const std::string& node, const std::string& host, int port,
               std::uint32_t timeline, std::uint64_t epoch) {
  info.node = node;
  info.host = host;
  info.port = port;
  info.timeline = timeline;
  info.epoch = epoch;
}

}  // namespace

Judgement JudgeRead(const MasterRead& read) {
  Judgement j;
  if (!read.exists) return j;
  if (read.data.empty()) {
    // Created bare (EnsurePath): the initial record, as the publisher reads it.
    j.kind = Judgement::Kind::kNoMaster;
    j.record = model::MasterRecord{};
    return j;
  }
  StatusOr<model::MasterRecord> record = model::MasterRecord::FromJson(read.data);
  if (!record.ok()) {
    j.kind = Judgement::Kind::kUnreadable;
    j.error = record.status();
    return j;
  }
  j.record = std::move(record).value();
  if (j.record->state != model::MasterState::kOk) {
    j.kind = Judgement::Kind::kNoMaster;
    return j;
  }
  j.bound = model::BoundVouchers(read.children, *j.record, read.data);
  j.unbound = static_cast<int>(read.children.size() - j.bound.size());
  j.kind = j.bound.empty() ? Judgement::Kind::kUnbound : Judgement::Kind::kBound;
  return j;
}

MasterInfo StateFor(const std::string& cluster, const Judgement& judged, std::int64_t mzxid,
                    const std::optional<MasterInfo>& last_verified, bool affirmed) {
  MasterInfo info;
  info.cluster = cluster;
  info.mzxid = mzxid;
  info.vouchers = static_cast<int>(judged.bound.size());
  switch (judged.kind) {
    case Judgement::Kind::kNoMaster:
      info.status = MasterStatus::kNoMaster;
      info.epoch = judged.record->epoch;
      return info;
    case Judgement::Kind::kBound:
      if (affirmed) {
        const model::MasterRecord& r = *judged.record;
        info.status = MasterStatus::kVouched;
        SetMaster(info, r.node, r.host, r.port, r.timeline, r.epoch);
        return info;
      }
      break;
    case Judgement::Kind::kAbsent:
      // Never deleted by an orchestrator: a cluster not set up yet, unless a master was known.
      if (!last_verified.has_value()) {
        info.status = MasterStatus::kNoMaster;
        info.mzxid = 0;
        return info;
      }
      break;
    case Judgement::Kind::kUnreadable:
    case Judgement::Kind::kUnbound: break;
  }
  // Unverified: the last verified master's fields, never the record's.
  info.status = MasterStatus::kUnverified;
  if (last_verified.has_value()) {
    const MasterInfo& v = *last_verified;
    SetMaster(info, v.node, v.host, v.port, v.timeline, v.epoch);
  }
  return info;
}

void AffirmGate::Interrupted() {
  if (read_once_) phase_ = Phase::kBaseline;
}

bool AffirmGate::Affirmed(const zk::Stat& master, const std::vector<std::int64_t>& vouchers) {
  read_once_ = true;
  switch (phase_) {
    case Phase::kOpen: return true;
    case Phase::kBaseline:
      baseline_ = std::max(master.mzxid, master.pzxid);
      for (std::int64_t v : vouchers) baseline_ = std::max(baseline_, v);
      phase_ = Phase::kWaiting;
      return false;
    case Phase::kWaiting:
      if (std::any_of(vouchers.begin(), vouchers.end(),
                      [this](std::int64_t v) { return v > baseline_; })) {
        phase_ = Phase::kOpen;
        return true;
      }
      return false;
  }
  return false;
}

}  // namespace pgherald::client::internal
