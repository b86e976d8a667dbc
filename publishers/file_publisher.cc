#include "publishers/file_publisher.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/model/json_fields.h"
#include "common/model/payload_json.h"
#include "common/model/untrusted.h"

namespace pgherald::publishers {

std::string FilePublisher::ToJson(const Publication& publication) {
  nlohmann::json j;
  j["format"] = model::kFormat;
  j["cluster"] = publication.cluster;
  j["vouched"] = publication.vouched;
  j["master"] = model::ToJsonValue(publication.record);
  return jsonf::Dump(j) + "\n";
}

Status FilePublisher::Publish(const Publication& publication) {
  // The cluster name becomes a file name: the name rule keeps it inside dir_ (no '/', not ".."),
  // whatever a znode said.
  if (!untrusted::IsValidName(publication.cluster)) {
    return InvalidArgument("cluster name \"" +
                           untrusted::SanitizeForDisplay(publication.cluster, 80) +
                           "\" cannot be a file name: it must be " + untrusted::kNameRule);
  }
  return pgherald::WriteFileAtomically(dir_ + "/" + publication.cluster + ".json",
                                       ToJson(publication));
}

}  // namespace pgherald::publishers
