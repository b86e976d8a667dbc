#include "common/bounded_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pgherald {

StatusOr<BoundedFile> ReadBoundedFile(const std::string& path, const std::string& what,
                                      std::size_t max_bytes, bool follow_symlinks) {
  const std::string culprit = what + " \"" + path + "\"";
  // O_NONBLOCK so that opening a FIFO does not wait for a writer; the type check below refuses it.
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  if (!follow_symlinks) flags |= O_NOFOLLOW;
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return NotFound("cannot read " + culprit + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return NotFound("cannot stat " + culprit + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(culprit + " is not a regular file; point it at a plain file");
  }
  if (static_cast<std::size_t>(st.st_size) > max_bytes) {
    return InvalidArgument(culprit + " is " + std::to_string(st.st_size) +
                           " bytes, over the limit of " + std::to_string(max_bytes));
  }
  BoundedFile out;
  out.group_or_world_readable = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return NotFound("cannot read " + culprit + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    out.content.append(buffer, static_cast<std::size_t>(n));
    // The file may grow between fstat and read: the cap holds on what is read.
    if (out.content.size() > max_bytes) {
      return InvalidArgument(culprit + " grew over the limit of " + std::to_string(max_bytes) +
                             " bytes while being read");
    }
  }
  return out;
}

}  // namespace pgherald
