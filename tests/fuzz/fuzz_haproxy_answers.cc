// Fuzz target: HAProxy's answers as `pgherald watch` reads them (haproxy/runtime_api.h): the reply
// to `set server ... addr`, a batch of runtime commands followed by `show info`, the master CLI's
// `show proc`, and a worker's `show sess`. HAProxy writes them, but an answer can be cut short
// by a reload, and whatever is read back goes into the next command.
// Properties: nothing crashes; a batch answer has one trimmed answer per command and a Pid on one
// line; every PID read from `show proc` is decimal digits; every session id is 0x<hex> (nothing
// that could end or extend the `shutdown session <id>` command).
#include "haproxy/runtime_api.h"
#include "tests/fuzz/fuzz_util.h"

using pgherald::fuzz::AsText;
namespace haproxy = pgherald::haproxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const std::string raw(AsText(data + 1, size - 1));

  const std::string command = "set server be/srv addr 10.0.0.1 port 5432";
  if (auto changed = haproxy::ParseSetAddrAnswer(command, raw); changed.ok()) {
    FUZZ_CHECK(*changed == (raw.find("changed from") != std::string::npos));
  } else {
    FUZZ_CHECK(changed.status().message().find(command) != std::string::npos);
  }

  const std::size_t count = 1 + selector % 4;
  if (auto batch = haproxy::ParseBatchAnswer(count, raw)) {
    FUZZ_CHECK(batch->answers.size() == count);
    FUZZ_CHECK(!batch->pid.empty() && batch->pid.find('\n') == std::string::npos);
    for (const auto& a : batch->answers) {
      FUZZ_CHECK(a.empty() ||
                     (a.front() != ' ' && a.front() != '\n' && a.back() != ' ' && a.back() != '\n'),
                 "untrimmed answer: " + a);
    }
  }

  for (const auto& pid : haproxy::ParseShowProc(raw)) {
    FUZZ_CHECK(!pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos,
               "pid " + pid);
  }

  const haproxy::ServerRef ref{"pg_primary", "primary"};
  for (const auto& id : haproxy::ParseShowSessIds(raw, ref)) {
    FUZZ_CHECK(id.size() > 2 && id.rfind("0x", 0) == 0 &&
                   id.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos,
               "session id " + id);
  }
  return 0;
}
