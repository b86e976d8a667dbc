// Vouchers bound to one exact master record (docs/zookeeper-contract.md, "Vouchers").
//
// clusters/<c>/master/<name> is an orchestrator leader's voucher. Its NAME binds it to the exact
// bytes of the master record it vouches for:
//
//   v1.<epoch>.<digest>.<orchestrator>
//
// epoch: the record's epoch, decimal; digest: RecordDigest() of the master znode's data exactly as
// stored (32 lower-case hex characters, the first 128 bits of SHA-256); orchestrator: the leader's
// id (untrusted::IsValidName). The leader creates the voucher in the same multi that writes the
// record, so a consumer that reads the record and the children's names (the read it already makes)
// knows whether a voucher vouches for THIS record: a hand-written, replayed, corrupt or recreated
// record matches no voucher and is unverified, whatever children it has. A name that does not parse
// (an old-style voucher, anything else) binds nothing.
//
// The voucher's DATA is its re-affirmation (VoucherPayload): the leader rewrites it (setData, so
// the voucher's mzxid moves) right after each verification of the record's master, at most every
// `voucher_reaffirm_ms`, and only with a verification that started after its own last session
// interruption. A consumer whose own session was interrupted opens a route again only when it sees
// the voucher's mzxid move after it reconnected: a verification made after the interruption.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"

namespace pgherald::model {

inline constexpr std::string_view kVoucherNamePrefix = "v1.";
inline constexpr std::size_t kRecordDigestLength = 32;

// The first 128 bits of SHA-256 of the master znode's data, as 32 lower-case hex characters.
std::string RecordDigest(std::string_view master_bytes);

// "v1.<epoch>.<digest>.<orchestrator>".
std::string VoucherName(std::uint64_t epoch, std::string_view digest, std::string_view orchestrator);

struct VoucherId {
  std::uint64_t epoch = 0;
  std::string digest;
  std::string orchestrator;
#if __cplusplus >= 202002L
  bool operator==(const VoucherId&) const = default;
#endif
};
// nullopt unless `name` is exactly a VoucherName(): prefix, a decimal epoch without sign or leading
// zero (other than "0"), 32 lower-case hex characters, a valid orchestrator name.
std::optional<VoucherId> ParseVoucherName(std::string_view name);

// Whether `name` vouches for the record whose stored bytes are `master_bytes` and that decodes to
// `record`: the record is state ok, and the name's epoch and digest are the record's.
bool VoucherBinds(std::string_view name, const MasterRecord& record, std::string_view master_bytes);

// The children of the master znode that vouch for this record (VoucherBinds), in their order.
std::vector<std::string> BoundVouchers(const std::vector<std::string>& children,
                                       const MasterRecord& record, std::string_view master_bytes);

// The names among `children` that are this orchestrator's vouchers, bound to any record (so that a
// leader withdraws every voucher of its own), plus a legacy voucher named exactly `orchestrator`.
std::vector<std::string> VouchersOf(const std::vector<std::string>& children,
                                    std::string_view orchestrator);

// The voucher's data: {"format":1,"orchestrator","epoch","node","timeline","digest",
// "affirmed_at" (wall ms of the verification),"affirm_seq" (1 at creation, +1 per re-affirmation)}.
// For people and tools; consumers bind by the NAME and date by the znode's mzxid, never by these
// fields.
struct VoucherPayload {
  std::string orchestrator;
  std::uint64_t epoch = 0;
  std::string node;
  std::uint32_t timeline = 0;
  std::string digest;
  std::int64_t affirmed_at_ms = 0;
  std::uint64_t affirm_seq = 0;

  std::string ToJson() const;
  static StatusOr<VoucherPayload> FromJson(std::string_view text);
#if __cplusplus >= 202002L
  bool operator==(const VoucherPayload&) const = default;
#endif
};

}  // namespace pgherald::model
