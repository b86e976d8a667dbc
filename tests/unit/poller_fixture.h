// A Poller of node1 on FakeZk with a ManualClock, shared by the poller's fencing tests: the node's
// observation comes from a test source (node_), the fence action is a command that appends its
// reason to a marker file, and the test writes the master record and its vouchers as an
// orchestrator (or a hostile operator) would.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "common/base/clock.h"
#include "tests/support/fake_zk.h"
#include "common/model/voucher.h"
#include "pollers/poller.h"
#include "pollers/poller_config.h"
#include "common/model/zk_paths.h"
#include "tests/support/manual_clock.h"

namespace pgherald::pollers {

inline const model::ClusterPaths kMain("/pgherald", "main");
inline const std::string kMaster = kMain.Master();
inline const std::string kNodePath = kMain.Node("node1");

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// What vouches for a record the test writes.
enum class Voucher {
  kNone,
  kLegacy,      // a child named after the orchestrator (binds nothing)
  kOtherBytes,  // a v1 voucher bound to other bytes (a replayed or stale voucher)
  kBound,       // a v1 voucher bound to exactly these bytes, as the leader's publish multi makes
};

// The child's name that `voucher` puts beside the record `r` stored as `bytes`; "" for kNone.
inline std::string VoucherChild(const model::MasterRecord& r, const std::string& bytes,
                                Voucher voucher) {
  switch (voucher) {
    case Voucher::kNone:
      return "";
    case Voucher::kLegacy:
      return "o1";
    case Voucher::kOtherBytes:
      return model::VoucherName(r.epoch, model::RecordDigest(bytes + " "), "o1");
    case Voucher::kBound:
      return model::VoucherName(r.epoch, model::RecordDigest(bytes), "o1");
  }
  return "";
}

class PollerOnFakeZkTest : public ::testing::Test {
 public:
  static model::MasterRecord Record(const std::string& node, std::uint32_t timeline = 1,
                                    std::uint64_t epoch = 1) {
    model::MasterRecord r;
    r.state = model::MasterState::kOk;
    r.node = node;
    r.host = "127.0.0.1";
    r.port = 5432;
    r.timeline = timeline;
    r.epoch = epoch;
    r.decided_by = "o1";
    return r;
  }

  static model::NodeObservation Writable(std::uint32_t timeline = 1) {
    model::NodeObservation o;
    o.node = "node1";
    o.host = "127.0.0.1";
    o.port = 5432;
    o.reachable = true;
    o.in_recovery = false;
    o.timeline = timeline;
    o.current_lsn = 100;
    return o;
  }

 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgherald-pollerfence-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    marker_ = dir_ + "/fenced";
    server_ = zk::FakeZkServer::Create(&clock_);
    orchestrator_ = server_->NewSession();
  }
  void TearDown() override {
    poller_.reset();
    orchestrator_.reset();
    std::remove(marker_.c_str());
    ::rmdir(dir_.c_str());
  }

  // A poller of node1 whose fence action appends a line to marker_.
  void MakePoller(bool on_zookeeper_loss = true, FenceAction action = FenceAction::kCommand) {
    PollerSection s;
    s.cluster = "main";
    s.node = "node1";
    s.host = "127.0.0.1";
    s.port = 5432;
    s.tick = Millis(500);
    s.heartbeat = Millis(2000);
    s.fence.action = action;
    s.fence.command = "echo \"$PGHERALD_FENCE_REASON\" >> " + marker_;
    s.fence.timeout = Millis(10000);
    s.fence.on_zookeeper_loss = on_zookeeper_loss;
    s.fence.self_fence_deadline = Millis(3000);
    poller_ = std::make_unique<Poller>(
        s, pg::PgParams{},
        [this]() -> StatusOr<std::unique_ptr<zk::ZkSession>> {
          zk::FakeZkOptions o;
          o.session_timeout = Millis(10000);
          auto made = server_->NewSession(o);
          session_ = made.get();
          return std::unique_ptr<zk::ZkSession>(std::move(made));
        },
        "/pgherald", clock_, "test");
    poller_->SetObservationSourceForTest([this] { return node_; });
  }

  // Writes `r` as the master record (replacing every child) with the given voucher.
  void Write(const model::MasterRecord& r, Voucher voucher) {
    const std::string bytes = r.ToJson();
    ASSERT_TRUE(zk::EnsurePath(*orchestrator_, kMaster).ok());
    for (const auto& child : server_->PeekChildren(kMaster)) {
      ASSERT_TRUE(orchestrator_->Delete(kMaster + "/" + child).ok());
    }
    ASSERT_TRUE(orchestrator_->Set(kMaster, bytes).ok());
    const std::string name = VoucherChild(r, bytes, voucher);
    if (name.empty()) return;
    ASSERT_TRUE(orchestrator_->Create(kMaster + "/" + name, "", zk::CreateMode::kEphemeral).ok());
  }

  // The orchestrator's record naming `node` on timeline 1, with a bound voucher when `vouched`.
  void Publish(const std::string& node, bool vouched) {
    Write(Record(node), vouched ? Voucher::kBound : Voucher::kNone);
  }

  // Ticks every 500 ms of manual time for `total`.
  void TickFor(Millis total) {
    for (Millis t(0); t < total; t += Millis(500)) {
      clock_.Advance(Millis(500));
      poller_->Tick({});
    }
  }

  int FenceRuns() const {
    const std::string text = ReadFile(marker_);
    int lines = 0;
    for (char ch : text) lines += ch == '\n' ? 1 : 0;
    return lines;
  }

  std::optional<model::NodeObservation> Published() const {
    auto node = server_->Peek(kNodePath);
    if (!node) return std::nullopt;
    auto o = model::NodeObservation::FromJson(node->data);
    if (!o.ok()) return std::nullopt;
    return *o;
  }

  ManualClock clock_;
  std::string dir_;
  std::string marker_;
  std::shared_ptr<zk::FakeZkServer> server_;
  std::unique_ptr<zk::FakeZk> orchestrator_;
  zk::FakeZk* session_ = nullptr;  // the poller's current session (owned by its publisher)
  std::unique_ptr<Poller> poller_;
  model::NodeObservation node_ = Writable();
};

}  // namespace pgherald::pollers
