// FilePublisher: mirrors each cluster's published state into DIR/<cluster>.json, atomically
// (write DIR/.<cluster>.json.tmp, fsync it, rename over the old file, fsync DIR), so a reader
// sees the old or the new file, never a torn one. Content:
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

// Writes `content` to `path` atomically (temp file in the same directory, fsync, rename, fsync of
// the directory). Errors name the path and the failing step.
Status WriteFileAtomically(const std::string& path, const std::string& content);

}  // namespace pgherald::publishers
