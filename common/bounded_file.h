// Reading files that an operator names in a config (secrets, tokens, templates) without trusting
// what is at the path: it must be a regular file (not /dev/zero, a FIFO or a directory) of at most
// `max_bytes`; it is opened with O_NOFOLLOW only when `follow_symlinks` is false.
#pragma once

#include <cstddef>
#include <string>

#include "common/base/status.h"

namespace pgherald {

inline constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;
inline constexpr std::size_t kMaxTemplateFileBytes = 1024 * 1024;

struct BoundedFile {
  std::string content;
  // Set when the file's mode lets its group or others read it (a secret should be 0600 or 0400):
  // callers that read secrets log it as a warning naming the file and the fix (chmod 600).
  bool group_or_world_readable = false;
};

// kNotFound when the file cannot be opened (errno's text), kInvalidArgument when it is not a
// regular file or is larger than max_bytes; every message names `what` (the config key) and the
// path.
StatusOr<BoundedFile> ReadBoundedFile(const std::string& path, const std::string& what,
                                      std::size_t max_bytes, bool follow_symlinks = true);

}  // namespace pgherald
