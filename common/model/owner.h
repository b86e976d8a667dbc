// Cluster ownership's znode names and data (docs/zookeeper-contract.md, "Ownership"): the pure
// codec shared by the orchestrator (orchestrator/ownership.h) and the readers (`pgherald status`,
// the HTTP API).
//
//   <root>/orchestrators/election/n-<guid>-<seq>   a member (ephemeral sequential)
//   <root>/clusters/<c>/owners/o-<guid>-<seq>      a candidate for owning <c> (ephemeral sequential);
//                                                  the lowest sequence number owns the cluster
//
// Both hold {"id":"<orchestrator id>","guid":"<guid>"}; a member may hold the plain guid (older
// orchestrators). Everything here is read from ZooKeeper: hostile input, parsed strictly.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pgherald::model {

// A name o-<guid>-<seq> of an owners queue (guid [0-9a-z]{1,64}, seq at most 18 decimal digits).
struct OwnerCandidate {
  std::string name;
  std::string guid;
  long long seq = -1;
};
std::optional<OwnerCandidate> ParseOwnerCandidate(const std::string& name);
// The queue's valid candidates, by sequence number (the owner first); other names are ignored.
std::vector<OwnerCandidate> SortedCandidates(const std::vector<std::string>& names);
// The guid of an election member name n-<guid>-<seq>; "" when it is not one.
std::string MemberGuid(const std::string& name);

// A member's or candidate's data: the orchestrator id it names (untrusted::IsValidName), "" when
// the data holds none (the plain guid of an older member, or anything malformed).
std::string OwnerIdOf(const std::string& data);
// {"id":"<id>","guid":"<guid>"}.
std::string OwnerData(const std::string& id, const std::string& guid);

}  // namespace pgherald::model
