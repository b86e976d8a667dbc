// common/atomic_file.h: the one atomic writer (watch sinks, file publisher). What an attacker with
// write access to the target's directory could do to the old writer (a predictable temporary
// name, opened without O_EXCL, owner reset to the writer's) and what an operator relies on (owner
// and mode of the files it replaces kept, restrictive mode for new files).
#include "common/atomic_file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace pgherald {
namespace {

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgherald-atomic-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  static std::string Read(const std::string& path) {
    auto text = ReadFile(path);
    return text.ok() ? *text : "<missing>";
  }
  // Every entry of the directory but the ones named.
  std::vector<std::string> Others(const std::vector<std::string>& known) const {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir_.c_str());
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      if (std::find(known.begin(), known.end(), name) == known.end()) out.push_back(name);
    }
    ::closedir(d);
    return out;
  }
  std::string dir_;
};

TEST_F(AtomicFileTest, ReplacesContentAndLeavesNoTemporaryFile) {
  Write(Path("cfg"), "old\n");
  ASSERT_TRUE(WriteFileAtomically(Path("cfg"), "new\n").ok());
  EXPECT_EQ(Read(Path("cfg")), "new\n");
  EXPECT_TRUE(Others({"cfg"}).empty());
}

// The old writer opened "<dir>/.<base>.pgherald-tmp" (and the publisher "<dir>/.<base>.tmp") with
// O_CREAT|O_TRUNC, following a symlink planted there into any file the writer could write.
TEST_F(AtomicFileTest, SymlinksPlantedAtTheOldTemporaryNamesAreNotFollowed) {
  Write(Path("victim"), "precious\n");
  Write(Path("cfg"), "old\n");
  for (const char* name : {".cfg.pgherald-tmp", ".cfg.tmp"}) {
    ASSERT_EQ(::symlink(Path("victim").c_str(), Path(name).c_str()), 0);
  }
  ASSERT_TRUE(WriteFileAtomically(Path("cfg"), "new\n").ok());
  EXPECT_EQ(Read(Path("cfg")), "new\n");
  EXPECT_EQ(Read(Path("victim")), "precious\n");
  struct stat st {};
  ASSERT_EQ(::lstat(Path(".cfg.pgherald-tmp").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(AtomicFileTest, TemporaryNamesAreUnpredictableAndExclusive) {
  auto a = PendingFile::Create(Path("cfg"), "a", 0644);
  auto b = PendingFile::Create(Path("cfg"), "b", 0644);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->path(), b->path());
  EXPECT_EQ(a->path().rfind(Path(".cfg."), 0), 0u) << a->path();
  // Dropped without Commit: removed, the target never created.
  a->Discard();
  EXPECT_NE(::access(a->path().c_str(), F_OK), 0);
  const std::string b_path = b->path();
  { auto moved = std::move(*b); }
  EXPECT_NE(::access(b_path.c_str(), F_OK), 0);
  EXPECT_TRUE(Others({}).empty());
}

TEST_F(AtomicFileTest, ATargetThatIsASymlinkIsRefusedNamingIt) {
  Write(Path("real"), "real\n");
  ASSERT_EQ(::symlink(Path("real").c_str(), Path("cfg").c_str()), 0);
  Status s = WriteFileAtomically(Path("cfg"), "new\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(Path("cfg") + " exists but is not a regular file (a symlink)"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(Read(Path("real")), "real\n");
  EXPECT_TRUE(Others({"real", "cfg"}).empty());
}

TEST_F(AtomicFileTest, OwnerGroupAndModeOfTheReplacedFileAreKept) {
  if (::geteuid() != 0) {
    GTEST_FAIL() << "needs root to give the target another owner (CI runs as root)";
  }
  Write(Path("cfg"), "old\n");
  ASSERT_EQ(::chown(Path("cfg").c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chmod(Path("cfg").c_str(), 0640), 0);
  ASSERT_TRUE(WriteFileAtomically(Path("cfg"), "new\n").ok());
  struct stat st {};
  ASSERT_EQ(::stat(Path("cfg").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(Read(Path("cfg")), "new\n");
}

TEST_F(AtomicFileTest, ANewFileGetsTheGivenModeWhateverTheUmask) {
  const mode_t old = ::umask(0);
  ASSERT_TRUE(WriteFileAtomically(Path("secret"), "pw\n", 0600).ok());
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(Path("secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(AtomicFileTest, AMissingDirectoryIsNamed) {
  Status s = WriteFileAtomically(Path("nodir/cfg"), "x");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(Path("nodir/.cfg.")), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pgherald
