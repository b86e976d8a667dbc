// Replacing a file so that readers (HAProxy, pgbouncer, a script) see either the old or the new
// content, never a mix, and the new content survives a crash: write a temporary file in the same
// directory, fsync it, rename it over the target, fsync the directory. The one writer of pgherald
// (the watch sinks and the file publisher both use it).
//
// Safe in a directory others can write to (docs/security.md):
//   - the temporary name is unpredictable ("<dir>/.<base>.<16 random hex>.tmp") and created with
//     O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC: a symlink or file planted in the directory is never
//     followed, truncated or reused;
//   - an existing target keeps its owner, group and mode (the temporary file gets them with
//     fchown/fchmod before the rename; a writer that may not give it the target's owner fails
//     instead of changing it); a new target gets `new_file_mode`;
//   - a target that exists but is not a regular file (a symlink, a FIFO, a directory) is refused,
//     naming it: replacing a symlink would silently cut the link.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/base/status.h"

namespace pgherald {

// A written, fsynced temporary file next to its target, not yet renamed. Removed by the
// destructor unless Commit() succeeded. Move-only.
class PendingFile {
 public:
  // Creates the temporary file for `target` and writes `content` to it (see above for the mode
  // and owner). Errors name the file and errno's text.
  static StatusOr<PendingFile> Create(const std::string& target, std::string_view content,
                                      mode_t new_file_mode);
  PendingFile(PendingFile&& other) noexcept;
  PendingFile& operator=(PendingFile&& other) noexcept;
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile();

  // The temporary file's path, e.g. for `haproxy -c -f <path>` before committing.
  const std::string& path() const { return tmp_; }
  // Renames the temporary file over the target and fsyncs the directory. Once only.
  Status Commit();
  // Removes the temporary file now (also what the destructor does).
  void Discard();

 private:
  PendingFile(std::string target, std::string tmp)
      : target_(std::move(target)), tmp_(std::move(tmp)) {}
  std::string target_;
  std::string tmp_;  // "" once committed or discarded
};

// PendingFile::Create + Commit.
Status WriteFileAtomically(const std::string& path, std::string_view content,
                           mode_t new_file_mode = 0644);

// The whole content of `path`, or kNotFound. For files pgherald itself writes (the previous
// rendering); operator-named input goes through ReadBoundedFile (common/bounded_file.h).
StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace pgherald
