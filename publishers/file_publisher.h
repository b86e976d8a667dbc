// FilePublisher: mirrors each cluster's published state into DIR/<cluster>.json, atomically
// (common/atomic_file.h: an unpredictable temporary name opened O_EXCL|O_NOFOLLOW, fsync, rename
// over the old file keeping its owner and mode, fsync DIR), so a reader sees the old or the new
// file, never a torn one. A cluster name that is not a valid name (untrusted::IsValidName) is
// refused, so nothing is written outside DIR. Content:
//   {"format":1,"cluster":"main","vouched":true,"master":{...MasterRecord...}}
#pragma once

#include <string>

#include "publishers/publisher.h"

namespace pgherald::publishers {

class FilePublisher final : public Publisher {
 public:
  // `dir` must exist and be writable; Publish reports it otherwise.
  explicit FilePublisher(std::string dir) : dir_(std::move(dir)) {}
  std::string name() const override { return "file:" + dir_; }
  Status Publish(const Publication& publication) override;

  // The JSON written for `publication`.
  static std::string ToJson(const Publication& publication);

 private:
  std::string dir_;
};

}  // namespace pgherald::publishers
