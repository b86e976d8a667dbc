// Fuzz target: the operator-written znodes the orchestrator reads (publishers/zk_publisher.h):
// clusters/<c>/control (ParseControl) and clusters/<c>/identity (ZkPublisher::ReadIdentity, driven
// through an in-memory FakeZk so the real reader runs, not a copy of it).
// Properties: nothing crashes; an accepted control round-trips through ControlToJson; a read
// identity is exactly the string that was written, and a rejected one names the znode.
#include <memory>
#include <nlohmann/json.hpp>

#include "tests/support/fake_zk.h"
#include "publishers/zk_publisher.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;
namespace zk = pgherald::zk;

namespace {

struct Fixture {
  std::shared_ptr<zk::FakeZkServer> server = zk::FakeZkServer::Create();
  std::unique_ptr<zk::FakeZk> session;
  std::unique_ptr<pgherald::publishers::ZkPublisher> publisher;
  const std::string path = "/pgherald/clusters/c/identity";

  Fixture() {
    pgherald::fuzz::QuietLogging();
    zk::FakeZkOptions options;
    options.dispatch = zk::DispatchMode::kManual;
    session = server->NewSession(options);
    FUZZ_CHECK(session->WaitConnected(std::chrono::seconds(5)).ok());
    for (const char* p : {"/pgherald", "/pgherald/clusters", "/pgherald/clusters/c"}) {
      FUZZ_CHECK(session->Create(p, "", zk::CreateMode::kPersistent).ok(), p);
    }
    FUZZ_CHECK(session->Create(path, "", zk::CreateMode::kPersistent).ok());
    publisher =
        std::make_unique<pgherald::publishers::ZkPublisher>(session.get(), "/pgherald", "fuzz", 10);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Fixture* fixture = new Fixture();  // one fake server for the whole run
  const std::string text(AsText(data, size));

  if (auto control = pgherald::publishers::ParseControl(text); control.ok()) {
    const std::string again = pgherald::publishers::ControlToJson(*control);
    auto back = pgherald::publishers::ParseControl(again);
    FUZZ_CHECK(back.ok() && back->paused == control->paused && back->reason == control->reason &&
                   back->changed_by == control->changed_by &&
                   back->changed_at_ms == control->changed_at_ms,
               "control does not round-trip: " + again);
  } else {
    FUZZ_CHECK(control.status().message().find("control") != std::string::npos,
               "a rejected control must name the znode: " + control.status().message());
  }

  FUZZ_CHECK(fixture->session->Set(fixture->path, text, -1).ok());
  auto identity = fixture->publisher->ReadIdentity("c");
  if (identity.ok()) {
    FUZZ_CHECK(identity->has_value(), "the identity znode exists");
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    FUZZ_CHECK(j.is_object() && j["system_identifier"] == **identity,
               "identity read is not the one written: " + **identity);
  } else {
    FUZZ_CHECK(identity.status().message().find(fixture->path) != std::string::npos,
               "a rejected identity must name the znode: " + identity.status().message());
  }
  return 0;
}
