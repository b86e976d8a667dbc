#include "common/bounded_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace pgherald {
namespace {

class BoundedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgherald-bounded-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    chmod(path.c_str(), mode);
    return path;
  }
  std::string dir_;
};

TEST_F(BoundedFileTest, ReadsARegularFile) {
  const std::string path = Write("secret", "s3cret\n", 0600);
  StatusOr<BoundedFile> f = ReadBoundedFile(path, "postgres.password_file", 100);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->content, "s3cret\n");
  EXPECT_FALSE(f->group_or_world_readable);
}

TEST_F(BoundedFileTest, FlagsGroupOrWorldReadable) {
  const std::string path = Write("secret", "x", 0644);
  StatusOr<BoundedFile> f = ReadBoundedFile(path, "k", 100);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->group_or_world_readable);
}

TEST_F(BoundedFileTest, RefusesDevicesDirectoriesAndFifos) {
  for (const std::string& path : {std::string("/dev/zero"), dir_}) {
    StatusOr<BoundedFile> f = ReadBoundedFile(path, "http.token_file", 100);
    ASSERT_FALSE(f.ok()) << path;
    EXPECT_NE(f.status().message().find("http.token_file"), std::string::npos);
    EXPECT_NE(f.status().message().find("not a regular file"), std::string::npos);
  }
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  StatusOr<BoundedFile> f = ReadBoundedFile(fifo, "k", 100);  // must not block on the FIFO
  ASSERT_FALSE(f.ok());
}

TEST_F(BoundedFileTest, RefusesOversizedFiles) {
  const std::string path = Write("big", std::string(101, 'x'), 0600);
  StatusOr<BoundedFile> f = ReadBoundedFile(path, "watch.sinks[0].template", 100);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("over the limit of 100"), std::string::npos);
}

TEST_F(BoundedFileTest, NoFollowRefusesSymlinks) {
  const std::string target = Write("t", "x", 0600);
  const std::string link = dir_ + "/link";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_TRUE(ReadBoundedFile(link, "k", 100, /*follow_symlinks=*/true).ok());
  EXPECT_FALSE(ReadBoundedFile(link, "k", 100, /*follow_symlinks=*/false).ok());
  EXPECT_FALSE(ReadBoundedFile(dir_ + "/missing", "k", 100).ok());
}

}  // namespace
}  // namespace pgherald
