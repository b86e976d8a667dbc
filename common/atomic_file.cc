#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pgherald {
namespace {

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status Errno(const std::string& what, const std::string& path, int err = errno) {
  return Unavailable(what + " " + path + ": " + std::strerror(err));
}

// 16 hex digits from the kernel's random pool.
StatusOr<std::string> RandomSuffix() {
  unsigned char bytes[8];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

Status WriteAll(int fd, std::string_view content, const std::string& path) {
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<PendingFile> PendingFile::Create(const std::string& target, std::string_view content,
                                          mode_t new_file_mode) {
  struct stat st {};
  const bool exists = ::lstat(target.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Errno("cannot stat", target);
  if (exists && !S_ISREG(st.st_mode)) {
    return FailedPrecondition(target + " exists but is not a regular file (" +
                              (S_ISLNK(st.st_mode) ? "a symlink" : "a special file") +
                              "): pgherald replaces it by rename and will not cut a link or "
                              "replace a device; point the config at the real file");
  }
  const size_t slash = target.rfind('/');
  const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  const std::string dir = slash == std::string::npos ? std::string() : target.substr(0, slash + 1);
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    auto suffix = RandomSuffix();
    if (!suffix.ok()) return suffix.status();
    tmp = dir + "." + base + "." + *suffix + ".tmp";
    // 0600 until the content is complete and the final owner and mode are set.
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && (errno != EEXIST || attempt >= 16)) return Errno("cannot create", tmp);
  }
  PendingFile pending(target, tmp);
  Status s = WriteAll(fd, content, tmp);
  if (s.ok() && exists) {
    struct stat mine {};
    if (::fstat(fd, &mine) != 0) {
      s = Errno("cannot stat", tmp);
    } else if ((mine.st_uid != st.st_uid || mine.st_gid != st.st_gid) &&
               ::fchown(fd, st.st_uid, st.st_gid) != 0) {
      s = Errno("cannot give the new content the owner " + std::to_string(st.st_uid) + ":" +
                    std::to_string(st.st_gid) + " of " + target + " (run as that user or root):",
                tmp);
    }
  }
  // After fchown, which may clear set-id bits; fchmod also undoes the umask.
  if (s.ok() && ::fchmod(fd, exists ? (st.st_mode & 07777) : new_file_mode) != 0) {
    s = Errno("cannot chmod", tmp);
  }
  if (s.ok() && ::fsync(fd) != 0) s = Errno("cannot fsync", tmp);
  if (::close(fd) != 0 && s.ok()) s = Errno("cannot close", tmp);
  if (!s.ok()) return s;  // `pending` removes the file
  return StatusOr<PendingFile>(std::move(pending));
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : target_(std::move(other.target_)), tmp_(std::move(other.tmp_)) {
  other.tmp_.clear();
}

PendingFile& PendingFile::operator=(PendingFile&& other) noexcept {
  if (this != &other) {
    Discard();
    target_ = std::move(other.target_);
    tmp_ = std::move(other.tmp_);
    other.tmp_.clear();
  }
  return *this;
}

PendingFile::~PendingFile() { Discard(); }

void PendingFile::Discard() {
  if (!tmp_.empty()) (void)::unlink(tmp_.c_str());
  tmp_.clear();
}

Status PendingFile::Commit() {
  if (tmp_.empty()) return FailedPrecondition("no pending content for " + target_);
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    Status s = Errno("cannot rename " + tmp_ + " to", target_);
    Discard();
    return s;
  }
  tmp_.clear();
  const std::string dir = DirOf(target_);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);  // best effort: the rename is already visible
    ::close(dfd);
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::string& path, std::string_view content,
                           mode_t new_file_mode) {
  auto pending = PendingFile::Create(path, content, new_file_mode);
  if (!pending.ok()) return pending.status();
  return pending->Commit();
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace pgherald
