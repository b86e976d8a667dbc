// Replacing a file so that readers (HAProxy, pgbouncer, a script) see either the old or the new
// content, never a mix, and the new content survives a crash: write a temporary file in the same
// directory, fsync it, rename it over the target, fsync the directory.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace pgherald::watch {

// The temporary name used for `path`: "<dir>/.<base>.pgherald-tmp". Exposed so that a caller can
// validate the temporary file (e.g. `haproxy -c`) before committing it with CommitTempFile.
std::string TempPathFor(const std::string& path);

// Writes `content` to TempPathFor(path) and fsyncs it. The mode is the existing target's, or 0644.
// Errors name the file and errno's text.
Status WriteTempFile(const std::string& path, std::string_view content);
// Renames TempPathFor(path) over `path` and fsyncs the directory.
Status CommitTempFile(const std::string& path);
// Removes the temporary file, ignoring errors (after a failed validation).
void DiscardTempFile(const std::string& path);

// WriteTempFile + CommitTempFile.
Status WriteFileAtomically(const std::string& path, std::string_view content);

// The whole content of `path`, or kNotFound.
StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace pgherald::watch
