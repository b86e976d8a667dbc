#include "common/model/voucher.h"

#include <nlohmann/json.hpp>

#include "common/model/json_fields.h"
#include "common/model/sha256.h"
#include "common/model/untrusted.h"

namespace pgherald::model {

std::string RecordDigest(std::string_view master_bytes) {
  return sha256::Hex(master_bytes).substr(0, kRecordDigestLength);
}

std::string VoucherName(std::uint64_t epoch, std::string_view digest, std::string_view orchestrator) {
  std::string name(kVoucherNamePrefix);
  name += std::to_string(epoch);
  name += '.';
  name += digest;
  name += '.';
  name += orchestrator;
  return name;
}

std::optional<VoucherId> ParseVoucherName(std::string_view name) {
  if (name.substr(0, kVoucherNamePrefix.size()) != kVoucherNamePrefix) return std::nullopt;
  name.remove_prefix(kVoucherNamePrefix.size());
  const std::size_t dot1 = name.find('.');
  if (dot1 == std::string_view::npos || dot1 == 0 || dot1 > 20) return std::nullopt;
  const std::string_view epoch_text = name.substr(0, dot1);
  if (epoch_text.size() > 1 && epoch_text[0] == '0') return std::nullopt;
  std::uint64_t epoch = 0;
  for (char c : epoch_text) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (epoch > (UINT64_MAX - digit) / 10) return std::nullopt;
    epoch = epoch * 10 + digit;
  }
  name.remove_prefix(dot1 + 1);
  if (name.size() < kRecordDigestLength + 2 || name[kRecordDigestLength] != '.') return std::nullopt;
  const std::string_view digest = name.substr(0, kRecordDigestLength);
  for (char c : digest) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  const std::string_view orchestrator = name.substr(kRecordDigestLength + 1);
  if (!untrusted::IsValidName(orchestrator)) return std::nullopt;
  return VoucherId{epoch, std::string(digest), std::string(orchestrator)};
}

bool VoucherBinds(std::string_view name, const MasterRecord& record, std::string_view master_bytes) {
  if (record.state != MasterState::kOk) return false;
  const auto id = ParseVoucherName(name);
  return id && id->epoch == record.epoch && id->digest == RecordDigest(master_bytes);
}

std::vector<std::string> BoundVouchers(const std::vector<std::string>& children,
                                       const MasterRecord& record, std::string_view master_bytes) {
  std::vector<std::string> bound;
  if (record.state != MasterState::kOk) return bound;
  const std::string digest = RecordDigest(master_bytes);
  for (const std::string& child : children) {
    const auto id = ParseVoucherName(child);
    if (id && id->epoch == record.epoch && id->digest == digest) bound.push_back(child);
  }
  return bound;
}

std::vector<std::string> VouchersOf(const std::vector<std::string>& children,
                                    std::string_view orchestrator) {
  std::vector<std::string> own;
  for (const std::string& child : children) {
    if (child == orchestrator) {
      own.push_back(child);
      continue;
    }
    const auto id = ParseVoucherName(child);
    if (id && id->orchestrator == orchestrator) own.push_back(child);
  }
  return own;
}

std::string VoucherPayload::ToJson() const {
  nlohmann::json j = {{"format", kFormat},     {"orchestrator", orchestrator},
                      {"epoch", epoch},        {"node", node},
                      {"timeline", timeline},  {"digest", digest},
                      {"affirmed_at", affirmed_at_ms}, {"affirm_seq", affirm_seq}};
  return jsonf::Dump(j);
}

StatusOr<VoucherPayload> VoucherPayload::FromJson(std::string_view text) {
  static const std::string kPayload = "VoucherPayload";
  nlohmann::json j;
  PGH_RETURN_IF_ERROR(jsonf::ParseObject(text, kPayload, &j));
  jsonf::FieldReader f(j, kPayload, "");
  using jsonf::Need;
  VoucherPayload v;
  PGH_RETURN_IF_ERROR(f.Name("orchestrator", &v.orchestrator, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.U64("epoch", &v.epoch, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Name("node", &v.node, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.U32("timeline", &v.timeline, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.Token("digest", &v.digest, Need::kRequired, kRecordDigestLength));
  PGH_RETURN_IF_ERROR(f.I64("affirmed_at", &v.affirmed_at_ms, Need::kRequired));
  PGH_RETURN_IF_ERROR(f.U64("affirm_seq", &v.affirm_seq, Need::kRequired));
  return v;
}

}  // namespace pgherald::model
