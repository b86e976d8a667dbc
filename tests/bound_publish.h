// Test and benchmark writers that stand in for the orchestrator: write a master record and its
// BOUND voucher (common/model/voucher.h) in one multi, as the leader's publish does -- the record set
// (or created), every voucher under it deleted, a voucher named after the exact new bytes created.
// Header-only: unit tests, the e2e stack and the benchmarks include it.
#pragma once

#include <string>
#include <vector>

#include "common/model/cluster_model.h"
#include "common/base/status.h"
#include "common/model/voucher.h"
#include "common/zk/zk_session.h"

namespace pgherald::testing {

// `master_path` must exist unless `create` is set (then it is created with the record). No voucher
// for a record that is not state ok.
inline Status PublishBound(zk::ZkSession& zk, const std::string& master_path,
                           const model::MasterRecord& record, const std::string& orchestrator,
                           bool create = false) {
  const std::string data = record.ToJson();
  std::vector<zk::Op> ops;
  if (create) {
    ops.push_back(zk::Op::Create(master_path, data, zk::CreateMode::kPersistent));
  } else {
    auto children = zk.GetChildren(master_path);
    if (!children.ok()) return children.status();
    ops.push_back(zk::Op::Set(master_path, data));
    for (const std::string& name : *children) ops.push_back(zk::Op::Delete(master_path + "/" + name));
  }
  if (record.state == model::MasterState::kOk) {
    const std::string name =
        model::VoucherName(record.epoch, model::RecordDigest(data), orchestrator);
    ops.push_back(zk::Op::Create(master_path + "/" + name, "{}", zk::CreateMode::kEphemeral));
  }
  return zk.Multi(ops).status();
}

}  // namespace pgherald::testing
