// SPDX-License-Identifier: Apache-2.0
// Tests of the agent's image side: layer unpacking, the image store, overlay
// root filesystems, image config merging, image references and pulls from a
// real registry (Debian's docker-registry) and from an in-test fake one.
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/image_config.h"
#include "agent/image_store.h"
#include "agent/layer_unpack.h"
#include "agent/registry_auth.h"
#include "agent/registry_client.h"
#include "agent/rootfs.h"
#include "common/paging.h"
#include "temp_dir.h"

namespace berth::agent {
namespace {

using berth::testutil::TempDir;

namespace fs = std::filesystem;
using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Helpers


std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

enum class Compression { kNone, kGzip, kZstd };

std::string CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "plain";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "?";
}

// Writes a layer tarball entry by entry with libarchive.
class LayerWriter {
 public:
  LayerWriter(const std::string& path, Compression compression) {
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    switch (compression) {
      case Compression::kNone:
        archive_write_add_filter_none(a_);
        break;
      case Compression::kGzip:
        archive_write_add_filter_gzip(a_);
        break;
      case Compression::kZstd:
        archive_write_add_filter_zstd(a_);
        break;
    }
    EXPECT_EQ(ARCHIVE_OK, archive_write_open_filename(a_, path.c_str()))
        << archive_error_string(a_);
  }

  ~LayerWriter() { Close(); }

  struct Attrs {
    mode_t perm;
    int64_t uid;
    int64_t gid;
    time_t mtime;
    std::map<std::string, std::string> xattrs;
  };

  static constexpr time_t kMtime = 1700000000;

  void Dir(const std::string& name, mode_t perm = 0755, int64_t uid = 0, int64_t gid = 0,
           time_t mtime = kMtime) {
    Add(name, AE_IFDIR, Attrs{perm, uid, gid, mtime, {}}, "", nullptr, nullptr);
  }

  void File(const std::string& name, const std::string& data, mode_t perm = 0644, int64_t uid = 0,
            int64_t gid = 0, time_t mtime = kMtime,
            std::map<std::string, std::string> xattrs = {}) {
    Add(name, AE_IFREG, Attrs{perm, uid, gid, mtime, std::move(xattrs)}, data, nullptr, nullptr);
  }

  void Symlink(const std::string& name, const std::string& target) {
    Add(name, AE_IFLNK, Attrs{0777, 0, 0, kMtime, {}}, "", target.c_str(), nullptr);
  }

  void Hardlink(const std::string& name, const std::string& target) {
    Add(name, AE_IFREG, Attrs{0644, 0, 0, kMtime, {}}, "", nullptr, target.c_str());
  }

  void Device(const std::string& name, mode_t type, int major_num, int minor_num) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0666);
    archive_entry_set_rdev(e, makedev(major_num, minor_num));
    EXPECT_EQ(ARCHIVE_OK, archive_write_header(a_, e)) << archive_error_string(a_);
    archive_entry_free(e);
  }

  void Close() {
    if (a_ != nullptr) {
      archive_write_close(a_);
      archive_write_free(a_);
      a_ = nullptr;
    }
  }

 private:
  void Add(const std::string& name, mode_t type, const Attrs& attrs, const std::string& data,
           const char* symlink, const char* hardlink) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, attrs.perm);
    archive_entry_set_uid(e, attrs.uid);
    archive_entry_set_gid(e, attrs.gid);
    archive_entry_set_mtime(e, attrs.mtime, 0);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (symlink != nullptr) {
      archive_entry_set_symlink(e, symlink);
    }
    if (hardlink != nullptr) {
      archive_entry_set_hardlink(e, hardlink);
      archive_entry_set_size(e, 0);
    }
    for (const auto& [k, v] : attrs.xattrs) {
      archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    }
    EXPECT_EQ(ARCHIVE_OK, archive_write_header(a_, e)) << archive_error_string(a_);
    if (!data.empty()) {
      EXPECT_EQ(static_cast<la_ssize_t>(data.size()),
                archive_write_data(a_, data.data(), data.size()));
    }
    archive_entry_free(e);
  }

  archive* a_ = nullptr;
};

// Unmounts a rootfs when a test leaves, even through a failed assertion.
class RootfsGuard {
 public:
  explicit RootfsGuard(std::string container_dir) : dir_(std::move(container_dir)) {}

  ~RootfsGuard() { EXPECT_TRUE(UnmountRootfs(dir_).ok()); }

 private:
  std::string dir_;
};

void ExpectRefused(const Status& s, const std::string& entry) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ("LayerInvalid", s.error().code);
  EXPECT_NE(std::string::npos, s.error().message.find(entry)) << s.error().message;
}

// ---------------------------------------------------------------------------
// UnpackLayer

class UnpackLayerTest : public ::testing::TestWithParam<Compression> {};

TEST_P(UnpackLayerTest, KeepsFilesDirsLinksOwnersModesTimesAndXattrs) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, GetParam());
    w.Dir("etc", 0750, 0, 42, 1500000000);
    w.File("etc/hosts", "127.0.0.1 localhost\n", 0640, 0, 0, LayerWriter::kMtime,
           {{"user.note", "hi"}, {"trusted.overlay.redirect", "/x"}});
    w.Dir("bin");
    w.File("bin/tool", "#!/bin/sh\necho tool\n", 04755, 1000, 1001, 1234567890);
    w.Hardlink("bin/tool2", "bin/tool");
    w.Symlink("bin/sh", "/bin/busybox");
    w.Symlink("lib", "usr/lib");
    w.File("usr/lib/deep/file.so", std::string(100000, 'x'));
  }
  std::string dest = tmp.File("out");
  UnpackStats stats;
  Status s = UnpackLayer(blob, dest, &stats);
  ASSERT_TRUE(s.ok()) << s.error().message;

  EXPECT_EQ("127.0.0.1 localhost\n", ReadFile(dest + "/etc/hosts"));
  struct stat st;
  ASSERT_EQ(0, ::stat((dest + "/etc").c_str(), &st));
  EXPECT_EQ(0750u, st.st_mode & 07777);
  EXPECT_EQ(42u, st.st_gid);
  EXPECT_EQ(1500000000, st.st_mtime);

  ASSERT_EQ(0, ::stat((dest + "/bin/tool").c_str(), &st));
  EXPECT_EQ(04755u, st.st_mode & 07777);
  EXPECT_EQ(1000u, st.st_uid);
  EXPECT_EQ(1001u, st.st_gid);
  EXPECT_EQ(1234567890, st.st_mtime);
  EXPECT_EQ(2u, st.st_nlink);
  struct stat st2;
  ASSERT_EQ(0, ::stat((dest + "/bin/tool2").c_str(), &st2));
  EXPECT_EQ(st.st_ino, st2.st_ino);

  EXPECT_EQ("/bin/busybox", fs::read_symlink(dest + "/bin/sh").string());
  EXPECT_EQ("usr/lib", fs::read_symlink(dest + "/lib").string());
  EXPECT_EQ(100000u, fs::file_size(dest + "/usr/lib/deep/file.so"));

  char value[16] = {0};
  ASSERT_EQ(2, ::getxattr((dest + "/etc/hosts").c_str(), "user.note", value, sizeof(value)));
  EXPECT_EQ("hi", std::string(value, 2));
  EXPECT_EQ(-1, ::getxattr((dest + "/etc/hosts").c_str(), "trusted.overlay.redirect", value,
                           sizeof(value)));

  EXPECT_EQ(8u, stats.entries);
  EXPECT_EQ(3u, stats.files);
  EXPECT_EQ(2u, stats.directories);
  EXPECT_EQ(2u, stats.symlinks);
  EXPECT_EQ(1u, stats.hardlinks);
  EXPECT_EQ(0u, stats.skipped_devices);
  EXPECT_EQ(20u + 20u + 100000u, stats.bytes);
}

INSTANTIATE_TEST_SUITE_P(Compressions, UnpackLayerTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return CompressionName(info.param); });

TEST(UnpackLayerTest, UnpacksALayerWithoutEntriesToAnEmptyDirectory) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  { LayerWriter w(blob, Compression::kGzip); }
  UnpackStats stats;
  Status s = UnpackLayer(blob, tmp.File("out"), &stats);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(fs::is_directory(tmp.File("out")));
  EXPECT_TRUE(fs::is_empty(tmp.File("out")));
  EXPECT_EQ(0u, stats.entries);
}

TEST(UnpackLayerTest, SkipsDeviceNodesAndFifos) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.Dir("dev");
    w.Device("dev/null", AE_IFCHR, 1, 3);
    w.Device("dev/sda", AE_IFBLK, 8, 0);
    w.Device("dev/pipe", AE_IFIFO, 0, 0);
    w.Hardlink("dev/null2", "dev/null");
    w.File("dev/readme", "no devices here");
  }
  std::string dest = tmp.File("out");
  UnpackStats stats;
  Status s = UnpackLayer(blob, dest, &stats);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_FALSE(Exists(dest + "/dev/null"));
  EXPECT_FALSE(Exists(dest + "/dev/sda"));
  EXPECT_FALSE(Exists(dest + "/dev/pipe"));
  EXPECT_FALSE(Exists(dest + "/dev/null2"));
  EXPECT_EQ("no devices here", ReadFile(dest + "/dev/readme"));
  EXPECT_EQ(4u, stats.skipped_devices);
  EXPECT_EQ(1u, stats.files);
}

TEST(UnpackLayerTest, TurnsOciWhiteoutsIntoOverlayWhiteoutsThatHideLowerFiles) {
  TempDir tmp;
  std::string lower_blob = tmp.File("lower");
  {
    LayerWriter w(lower_blob, Compression::kGzip);
    w.Dir("a");
    w.File("a/keep", "keep");
    w.File("a/gone", "gone");
    w.Dir("d");
    w.File("d/old", "old");
    w.Dir("d/sub");
    w.File("d/sub/x", "x");
  }
  std::string upper_blob = tmp.File("upper");
  {
    LayerWriter w(upper_blob, Compression::kZstd);
    w.Dir("a");
    w.File("a/.wh.gone", "");
    w.Dir("d");
    w.File("d/.wh..wh..opq", "");
    w.File("d/new", "new");
  }
  std::string lower = tmp.File("l1");
  std::string upper = tmp.File("l2");
  ASSERT_TRUE(UnpackLayer(lower_blob, lower).ok());
  UnpackStats stats;
  Status s = UnpackLayer(upper_blob, upper, &stats);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(1u, stats.whiteouts);
  EXPECT_EQ(1u, stats.opaque_dirs);

  // The layer itself holds overlayfs' own markers.
  struct stat st;
  ASSERT_EQ(0, ::lstat((upper + "/a/gone").c_str(), &st));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(makedev(0, 0), st.st_rdev);
  EXPECT_FALSE(Exists(upper + "/a/.wh.gone"));
  EXPECT_FALSE(Exists(upper + "/d/.wh..wh..opq"));
  char value[4] = {0};
  ASSERT_EQ(1, ::getxattr((upper + "/d").c_str(), "trusted.overlay.opaque", value, 4));
  EXPECT_EQ('y', value[0]);

  // And a real overlay honours them.
  std::string container = tmp.File("c1");
  auto rootfs = MountRootfs({lower, upper}, container, false);
  ASSERT_TRUE(rootfs.ok()) << rootfs.error().message;
  RootfsGuard guard(container);
  EXPECT_EQ("keep", ReadFile(*rootfs + "/a/keep"));
  EXPECT_FALSE(Exists(*rootfs + "/a/gone"));
  EXPECT_EQ("new", ReadFile(*rootfs + "/d/new"));
  EXPECT_FALSE(Exists(*rootfs + "/d/old"));
  EXPECT_FALSE(Exists(*rootfs + "/d/sub"));
  EXPECT_TRUE(Exists(lower + "/d/old"));
}

TEST(UnpackLayerTest, LaterEntriesReplaceSymlinksAndLinkedFilesWithoutWritingThroughThem) {
  TempDir tmp;
  std::string outside = tmp.File("outside");
  WriteFile(outside + "/victim", "precious");
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.Symlink("s", outside + "/victim");
    w.File("s", "replaced");
    w.Symlink("d", outside);
    w.Dir("d");
    w.File("d/inside", "inside");
    w.File("a", "first");
    w.Hardlink("b", "a");
    w.File("a", "second");
  }
  std::string dest = tmp.File("out");
  Status s = UnpackLayer(blob, dest);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ("replaced", ReadFile(dest + "/s"));
  EXPECT_TRUE(fs::is_directory(fs::symlink_status(dest + "/d")));
  EXPECT_EQ("inside", ReadFile(dest + "/d/inside"));
  EXPECT_EQ("precious", ReadFile(outside + "/victim"));
  EXPECT_FALSE(Exists(outside + "/inside"));
  EXPECT_EQ("second", ReadFile(dest + "/a"));
  EXPECT_EQ("first", ReadFile(dest + "/b"));
}

TEST(UnpackLayerTest, RefusesDotDotPaths) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.File("ok", "fine");
    w.File("../evil", "evil");
  }
  std::string dest = tmp.File("sub/out");
  fs::create_directories(tmp.File("sub"));
  ExpectRefused(UnpackLayer(blob, dest), "../evil");
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(tmp.File("sub/evil")));
  EXPECT_FALSE(Exists(tmp.File("evil")));
}

TEST(UnpackLayerTest, RefusesDotDotInsideAPath) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kNone);
    w.File("a/b/../../../evil", "evil");
  }
  std::string dest = tmp.File("out");
  ExpectRefused(UnpackLayer(blob, dest), "a/b/../../../evil");
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(tmp.File("evil")));
}

TEST(UnpackLayerTest, RefusesAbsolutePaths) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  std::string target = tmp.File("abs-target");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.File(target, "evil");
  }
  std::string dest = tmp.File("out");
  ExpectRefused(UnpackLayer(blob, dest), target);
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(target));
}

TEST(UnpackLayerTest, RefusesWritingThroughAnAbsoluteSymlink) {
  TempDir tmp;
  std::string outside = tmp.File("outside");
  fs::create_directories(outside);
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.Symlink("link", outside);
    w.File("link/x", "evil");
  }
  std::string dest = tmp.File("out");
  ExpectRefused(UnpackLayer(blob, dest), "link/x");
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(outside + "/x"));
}

TEST(UnpackLayerTest, RefusesWritingThroughARelativeEscapingSymlink) {
  TempDir tmp;
  fs::create_directories(tmp.File("a/b"));
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kZstd);
    w.Symlink("link", "../../..");
    w.File("link/x", "evil");
  }
  std::string dest = tmp.File("a/b/out");
  ExpectRefused(UnpackLayer(blob, dest), "link/x");
  EXPECT_FALSE(Exists(dest));
  EXPECT_FALSE(Exists(tmp.File("x")));
  EXPECT_FALSE(Exists(tmp.File("a/x")));
}

TEST(UnpackLayerTest, RefusesWhiteoutsAndOpaqueMarkersThroughSymlinks) {
  TempDir tmp;
  std::string outside = tmp.File("outside");
  WriteFile(outside + "/victim", "precious");
  for (const std::string& marker :
       {std::string("link/.wh.victim"), std::string("link/.wh..wh..opq")}) {
    std::string blob = tmp.File("layer");
    {
      LayerWriter w(blob, Compression::kGzip);
      w.Symlink("link", outside);
      w.File(marker, "");
    }
    std::string dest = tmp.File("out");
    ExpectRefused(UnpackLayer(blob, dest), marker);
    EXPECT_FALSE(Exists(dest));
    EXPECT_EQ("precious", ReadFile(outside + "/victim"));
    char value[4];
    EXPECT_EQ(-1, ::getxattr(outside.c_str(), "trusted.overlay.opaque", value, sizeof(value)));
  }
}

TEST(UnpackLayerTest, RefusesHardlinksThatEscape) {
  TempDir tmp;
  WriteFile(tmp.File("secret"), "secret");
  std::string outside = tmp.File("outside");
  WriteFile(outside + "/passwd", "root:x:0:0");

  struct Case {
    std::string name;
    std::function<void(LayerWriter&)> build;
    std::string entry;
  };

  std::vector<Case> cases = {
      {"dotdot", [](LayerWriter& w) { w.Hardlink("h", "../secret"); }, "h"},
      {"absolute", [&](LayerWriter& w) { w.Hardlink("h", tmp.File("secret")); }, "h"},
      {"through-symlink",
       [&](LayerWriter& w) {
         w.Symlink("link", outside);
         w.Hardlink("h", "link/passwd");
       },
       "h"},
      {"missing-target", [](LayerWriter& w) { w.Hardlink("h", "nowhere"); }, "h"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string blob = tmp.File("layer-" + c.name);
    {
      LayerWriter w(blob, Compression::kGzip);
      c.build(w);
    }
    std::string dest = tmp.File("out");
    ExpectRefused(UnpackLayer(blob, dest), c.entry);
    EXPECT_FALSE(Exists(dest));
    struct stat st;
    ASSERT_EQ(0, ::stat((tmp.File("secret")).c_str(), &st));
    EXPECT_EQ(1u, st.st_nlink);
    ASSERT_EQ(0, ::stat((outside + "/passwd").c_str(), &st));
    EXPECT_EQ(1u, st.st_nlink);
  }
}

TEST(UnpackLayerTest, RefusesGarbageAndRemovesTheDestination) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  WriteFile(blob, std::string(5000, 'z'));
  std::string dest = tmp.File("out");
  Status s = UnpackLayer(blob, dest);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ("LayerInvalid", s.error().code);
  EXPECT_FALSE(Exists(dest));
}

TEST(UnpackLayerTest, RefusesANonEmptyDestinationWithoutTouchingIt) {
  TempDir tmp;
  std::string blob = tmp.File("layer");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.File("f", "f");
  }
  WriteFile(tmp.File("out/mine"), "mine");
  EXPECT_FALSE(UnpackLayer(blob, tmp.File("out")).ok());
  EXPECT_EQ("mine", ReadFile(tmp.File("out/mine")));
}

// ---------------------------------------------------------------------------
// ImageStore

std::string MakeLayerBlob(const std::string& path, int files, const std::string& tag) {
  {
    LayerWriter w(path, Compression::kGzip);
    w.Dir("data");
    for (int i = 0; i < files; ++i) {
      w.File("data/f" + std::to_string(i), tag + std::to_string(i) + std::string(1000, 'p'));
    }
  }
  auto digest = Sha256OfFile(path);
  EXPECT_TRUE(digest.ok());
  return *digest;
}

TEST(ImageStoreTest, UnpacksALayerOnceForConcurrentCallers) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  std::string blob = tmp.File("layer.tgz");
  std::string digest = MakeLayerBlob(blob, 300, "c");

  constexpr int kCallers = 8;
  std::latch start(kCallers);
  std::vector<std::string> paths(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto path = store.EnsureLayerUnpacked(digest, blob);
      paths[i] = path.ok() ? *path : "error: " + path.error().message;
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(1u, store.unpacks_performed());
  for (const auto& p : paths) {
    EXPECT_EQ(store.LayerPath(digest), p);
  }
  EXPECT_EQ("c299" + std::string(1000, 'p'), ReadFile(store.LayerPath(digest) + "/data/f299"));

  // Nothing is left under a temporary name.
  for (const auto& entry : fs::directory_iterator(store.root() + "/layers/sha256")) {
    EXPECT_EQ(digest.substr(7), entry.path().filename().string());
  }

  // A restarted store trusts what is on disk.
  ImageStore again(tmp.File("store"));
  ASSERT_TRUE(again.Init().ok());
  EXPECT_TRUE(again.HasLayer(digest));
  auto path = again.EnsureLayerUnpacked(digest, "/nonexistent");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(0u, again.unpacks_performed());
}

TEST(ImageStoreTest, SharesAFailedUnpackAndLeavesNothingBehind) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  std::string blob = tmp.File("evil.tgz");
  {
    LayerWriter w(blob, Compression::kGzip);
    w.File("../evil", "x");
  }
  std::string digest = *Sha256OfFile(blob);
  auto path = store.EnsureLayerUnpacked(digest, blob);
  ASSERT_FALSE(path.ok());
  EXPECT_EQ("LayerInvalid", path.error().code);
  EXPECT_FALSE(store.HasLayer(digest));
  EXPECT_TRUE(fs::is_empty(store.root() + "/layers/sha256"));
}

TEST(ImageStoreTest, InitRemovesInterruptedWork) {
  TempDir tmp;
  std::string root = tmp.File("store");
  {
    ImageStore store(root);
    ASSERT_TRUE(store.Init().ok());
  }
  WriteFile(root + "/layers/sha256/.tmp-abc-1/fs/half", "half");
  WriteFile(root + "/tmp/blob-1", "partial download");
  std::string good(64, 'a');
  WriteFile(root + "/layers/sha256/" + good + "/fs/file", "whole");
  ImageStore store(root);
  ASSERT_TRUE(store.Init().ok());
  EXPECT_FALSE(Exists(root + "/layers/sha256/.tmp-abc-1"));
  EXPECT_FALSE(Exists(root + "/tmp/blob-1"));
  EXPECT_TRUE(store.HasLayer("sha256:" + good));
}

TEST(ImageStoreTest, CommitBlobVerifiesTheDigest) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  std::string content = "hello blob";
  std::string digest = Sha256OfString(content);
  EXPECT_EQ("sha256:e997afd18e5f6be004fc193aed2c90291e68ab2c7599a62538c935b7fca6ab0f", digest);

  auto temp = store.CreateTempFile("blob");
  ASSERT_TRUE(temp.ok());
  WriteFile(*temp, content);
  Status wrong = store.CommitBlob(Sha256OfString("other"), *temp);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ("BlobDigestMismatch", wrong.error().code);
  EXPECT_FALSE(Exists(*temp));
  EXPECT_FALSE(store.HasBlob(Sha256OfString("other")));

  temp = store.CreateTempFile("blob");
  WriteFile(*temp, content);
  ASSERT_TRUE(store.CommitBlob(digest, *temp).ok());
  EXPECT_TRUE(store.HasBlob(digest));
  auto read = store.ReadBlob(digest, 1024);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(content, *read);
  EXPECT_FALSE(store.ReadBlob(digest, 3).ok());
  EXPECT_EQ("InvalidDigest", store.CommitBlob("sha256:abc", "/nonexistent").error().code);
}

TEST(ImageStoreTest, CollectUnusedKeepsOnlyWhatIsInUse) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  std::vector<std::string> digests;
  for (const char* name : {"a", "b"}) {
    std::string temp = *store.CreateTempFile("blob");
    std::string digest = MakeLayerBlob(temp, 3, name);
    ASSERT_TRUE(store.CommitBlob(digest, temp).ok());
    ASSERT_TRUE(store.EnsureLayerUnpacked(digest, store.BlobPath(digest)).ok());
    digests.push_back(digest);
  }
  ASSERT_TRUE(store.CollectUnused({digests[0]}).ok());
  EXPECT_TRUE(store.HasBlob(digests[0]));
  EXPECT_TRUE(store.HasLayer(digests[0]));
  EXPECT_FALSE(store.HasBlob(digests[1]));
  EXPECT_FALSE(store.HasLayer(digests[1]));
  EXPECT_EQ(1, std::distance(fs::directory_iterator(store.root() + "/layers/sha256"),
                             fs::directory_iterator()));

  ASSERT_TRUE(store.CollectUnused({}).ok());
  EXPECT_FALSE(store.HasLayer(digests[0]));
  EXPECT_TRUE(fs::is_empty(store.root() + "/blobs/sha256"));
}

// Sets the modification time of a store entry back by `age`, as if written that long ago.
void AgeEntry(const std::string& path, std::chrono::seconds age) {
  auto then = std::chrono::system_clock::now() - age;
  struct timespec times[2];
  times[0].tv_sec = std::chrono::system_clock::to_time_t(then);
  times[0].tv_nsec = 0;
  times[1] = times[0];
  ASSERT_EQ(0, ::utimensat(AT_FDCWD, path.c_str(), times, 0)) << path;
}

// A store holding one unpacked layer per name, each written two hours ago.
std::vector<std::string> StoreWithOldLayers(ImageStore& store,
                                            std::initializer_list<const char*> names) {
  std::vector<std::string> digests;
  for (const char* name : names) {
    std::string temp = *store.CreateTempFile("blob");
    std::string digest = MakeLayerBlob(temp, 2, name);
    EXPECT_TRUE(store.CommitBlob(digest, temp).ok());
    EXPECT_TRUE(store.EnsureLayerUnpacked(digest, store.BlobPath(digest)).ok());
    AgeEntry(store.BlobPath(digest), std::chrono::hours(2));
    AgeEntry(fs::path(store.LayerPath(digest)).parent_path().string(), std::chrono::hours(2));
    digests.push_back(digest);
  }
  return digests;
}

TEST(ImageStoreTest, CollectUnusedKeepsWhatWasUsedWithinTheGracePeriod) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  auto digests = StoreWithOldLayers(store, {"old", "released", "running"});
  auto now = std::chrono::system_clock::now();
  // "released" belonged to a task that ended ten minutes ago.
  store.MarkUsed({digests[1]}, now - std::chrono::minutes(10));

  auto stats = store.CollectUnused({digests[2]}, std::chrono::minutes(30), now);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(1u, stats->layers_removed);
  EXPECT_EQ(1u, stats->blobs_removed);
  EXPECT_EQ(1u, stats->kept_in_use);
  EXPECT_EQ(1u, stats->kept_recent);
  EXPECT_FALSE(store.HasLayer(digests[0]));
  EXPECT_FALSE(store.HasBlob(digests[0]));
  EXPECT_TRUE(store.HasLayer(digests[1]));
  EXPECT_TRUE(store.HasBlob(digests[1]));
  EXPECT_TRUE(store.HasLayer(digests[2]));

  // Once its grace has passed, the released image goes; the one in use never does.
  stats = store.CollectUnused({digests[2]}, std::chrono::minutes(30),
                              now + std::chrono::minutes(21));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(1u, stats->layers_removed);
  EXPECT_EQ(0u, stats->kept_recent);
  EXPECT_FALSE(store.HasLayer(digests[1]));
  EXPECT_FALSE(store.HasBlob(digests[1]));
  EXPECT_TRUE(store.HasLayer(digests[2]));
  EXPECT_TRUE(store.HasBlob(digests[2]));
  // Only the in-use layer's directory is left: no temporary names either.
  EXPECT_EQ(1, std::distance(fs::directory_iterator(store.root() + "/layers/sha256"),
                             fs::directory_iterator()));
}

TEST(ImageStoreTest, CollectUnusedKeepsFreshContentThatNobodyMarked) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  // A blob of a pull that failed half-way, and a layer of a store inherited from an earlier
  // process: neither is marked, both were just written.
  std::string temp = *store.CreateTempFile("blob");
  std::string blob_only = MakeLayerBlob(temp, 1, "partial");
  ASSERT_TRUE(store.CommitBlob(blob_only, temp).ok());
  temp = *store.CreateTempFile("blob");
  std::string layer = MakeLayerBlob(temp, 1, "inherited");
  ASSERT_TRUE(store.CommitBlob(layer, temp).ok());
  ASSERT_TRUE(store.EnsureLayerUnpacked(layer, store.BlobPath(layer)).ok());
  auto now = std::chrono::system_clock::now();

  auto stats = store.CollectUnused({}, std::chrono::seconds(60), now);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(2u, stats->kept_recent);
  EXPECT_TRUE(store.HasBlob(blob_only));
  EXPECT_TRUE(store.HasLayer(layer));

  stats = store.CollectUnused({}, std::chrono::seconds(60), now + std::chrono::seconds(61));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(1u, stats->layers_removed);
  EXPECT_EQ(2u, stats->blobs_removed);
  EXPECT_FALSE(store.HasBlob(blob_only));
  EXPECT_FALSE(store.HasLayer(layer));
  EXPECT_TRUE(fs::is_empty(store.root() + "/blobs/sha256"));
}

TEST(PulledImageRecordTest, RoundTripsTheDigestsAPersistedTaskKeepsInUse) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  auto layers = StoreWithOldLayers(store, {"base", "app"});
  Json config = {{"architecture", "amd64"}, {"config", {{"Cmd", {"sh"}}}}};
  std::string config_temp = *store.CreateTempFile("config");
  WriteFile(config_temp, config.dump());
  std::string config_digest = Sha256OfString(config.dump());
  ASSERT_TRUE(store.CommitBlob(config_digest, config_temp).ok());

  PulledImage image;
  image.reference = "127.0.0.1:5000/app:v1";
  image.digest = "sha256:" + std::string(64, 'd');
  image.manifest_digest = image.digest;
  image.config_digest = config_digest;
  image.config = config;
  for (const auto& d : layers) {
    image.layers.push_back({d, "application/vnd.oci.image.layer.v1.tar+gzip", 123, "/elsewhere"});
  }

  // Through text, as the task record on disk.
  Json record = Json::parse(PulledImageRecord(image).dump());
  auto restored = PulledImageFromRecord(record, store);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  EXPECT_EQ(image.StoreDigests(), restored->StoreDigests());
  EXPECT_EQ(3u, restored->StoreDigests().size());
  EXPECT_EQ(image.reference, restored->reference);
  EXPECT_EQ(image.digest, restored->digest);
  EXPECT_EQ(config, restored->config);
  ASSERT_EQ(2u, restored->layers.size());
  EXPECT_EQ(store.LayerPath(layers[0]), restored->layers[0].path);
  EXPECT_EQ(store.LayerPath(layers[1]), restored->layers[1].path);
  EXPECT_EQ(123u, restored->layers[1].size);

  // A collection told what the restored task uses keeps every one of its digests.
  auto stats = store.CollectUnused(restored->StoreDigests(), std::chrono::seconds(0),
                                   std::chrono::system_clock::now());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(0u, stats->layers_removed);
  EXPECT_EQ(0u, stats->blobs_removed);
  EXPECT_EQ(3u, stats->kept_in_use);

  // No image (a container not pulled yet) is an empty record and back.
  EXPECT_TRUE(PulledImageRecord(PulledImage{}).empty());
  auto empty = PulledImageFromRecord(Json::object(), store);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->StoreDigests().empty());

  record["layers"][0]["digest"] = "sha256:../../etc";
  auto bad = PulledImageFromRecord(record, store);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ("InvalidImageRecord", bad.error().code);
}

// ---------------------------------------------------------------------------
// Rootfs

TEST(RootfsTest, MountsManyLayersWithLongPathsThroughRelativeLowerDirs) {
  TempDir tmp;
  std::vector<std::string> lowers;
  std::string parent = tmp.File(std::string(60, 'p'));
  for (int i = 0; i < 40; ++i) {
    std::string dir = parent + "/" + std::string(90, 'l') + std::to_string(100 + i) + "/fs";
    WriteFile(dir + "/layer" + std::to_string(i), std::to_string(i));
    WriteFile(dir + "/top", std::to_string(i));
    lowers.push_back(dir);
  }
  std::string container = tmp.File("c");
  auto rootfs = MountRootfs(lowers, container, false);
  ASSERT_TRUE(rootfs.ok()) << rootfs.error().message;
  {
    RootfsGuard guard(container);
    EXPECT_EQ("0", ReadFile(*rootfs + "/layer0"));
    EXPECT_EQ("39", ReadFile(*rootfs + "/layer39"));
    EXPECT_EQ("39", ReadFile(*rootfs + "/top"));  // the last layer is on top

    // Writes land in the container's upper dir, never in a layer.
    WriteFile(*rootfs + "/top", "written");
    EXPECT_EQ("written", ReadFile(container + "/upper/top"));
    EXPECT_EQ("39", ReadFile(lowers.back() + "/top"));

    // Mounting again (an agent restart) keeps the existing mount.
    auto again = MountRootfs(lowers, container, true);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ("written", ReadFile(*again + "/top"));
  }
  EXPECT_FALSE(Exists(container + "/rootfs"));
  EXPECT_FALSE(Exists(container + "/upper"));
  EXPECT_FALSE(Exists(container + "/work"));
  EXPECT_TRUE(Exists(container));
  EXPECT_TRUE(UnmountRootfs(container).ok());
}

TEST(RootfsTest, RefusesTooManyLayersClearly) {
  TempDir tmp;
  std::vector<std::string> lowers;
  for (int i = 0; i < 200; ++i) {
    std::string dir = tmp.File(std::string(40, 'x') + std::to_string(i));
    fs::create_directories(dir);
    lowers.push_back(dir);
  }
  auto rootfs = MountRootfs(lowers, tmp.File("c"), false);
  ASSERT_FALSE(rootfs.ok());
  EXPECT_EQ("RootfsTooManyLayers", rootfs.error().code);
  EXPECT_NE(std::string::npos, rootfs.error().message.find("200 layers"));
  EXPECT_TRUE(UnmountRootfs(tmp.File("c")).ok());
}

TEST(RootfsTest, RefusesPathsOverlayCannotCarry) {
  TempDir tmp;
  fs::create_directories(tmp.File("a:b"));
  auto rootfs = MountRootfs({tmp.File("a:b")}, tmp.File("c"), false);
  ASSERT_FALSE(rootfs.ok());
  EXPECT_EQ("InvalidParameterException", rootfs.error().code);
  EXPECT_FALSE(MountRootfs({}, tmp.File("c"), false).ok());
}

// ---------------------------------------------------------------------------
// MergeImageConfig

Json BusyboxLikeImage() {
  return Json::parse(R"({
    "architecture": "amd64", "os": "linux",
    "config": {
      "Env": ["PATH=/opt/bin:/usr/bin", "LANG=C.UTF-8", "MODE=image"],
      "Entrypoint": ["/docker-entrypoint.sh"],
      "Cmd": ["nginx", "-g", "daemon off;"],
      "WorkingDir": "/srv",
      "User": "nginx"
    },
    "rootfs": {"type": "layers", "diff_ids": []}
  })");
}

TEST(MergeImageConfigTest, UsesTheImageWhenTheDefinitionSetsNothing) {
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), Json::object(), Json::object());
  EXPECT_EQ((std::vector<std::string>{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}),
            p.args);
  EXPECT_EQ((std::vector<std::string>{"PATH=/opt/bin:/usr/bin", "LANG=C.UTF-8", "MODE=image"}),
            p.env);
  EXPECT_EQ("/srv", p.cwd);
  EXPECT_EQ("nginx", p.user);
}

TEST(MergeImageConfigTest, CommandReplacesCmdAndKeepsTheImageEntrypoint) {
  Json def = {{"command", {"nginx", "-T"}}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, Json::object());
  EXPECT_EQ((std::vector<std::string>{"/docker-entrypoint.sh", "nginx", "-T"}), p.args);
}

TEST(MergeImageConfigTest, EntryPointDropsTheImageCmd) {
  Json def = {{"entryPoint", {"sh", "-c"}}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, Json::object());
  EXPECT_EQ((std::vector<std::string>{"sh", "-c"}), p.args);

  def["command"] = {"echo hi"};
  p = MergeImageConfig(BusyboxLikeImage(), def, Json::object());
  EXPECT_EQ((std::vector<std::string>{"sh", "-c", "echo hi"}), p.args);
}

TEST(MergeImageConfigTest, EmptyEntryPointClearsTheImageEntrypointButKeepsCmd) {
  Json def = {{"entryPoint", Json::array()}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, Json::object());
  EXPECT_EQ((std::vector<std::string>{"nginx", "-g", "daemon off;"}), p.args);
}

TEST(MergeImageConfigTest, OverrideCommandWinsOverTheDefinition) {
  Json def = {{"command", {"a"}}};
  Json override_json = {{"command", {"b", "c"}}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, override_json);
  EXPECT_EQ((std::vector<std::string>{"/docker-entrypoint.sh", "b", "c"}), p.args);
}

TEST(MergeImageConfigTest, TaskEnvironmentOverridesImageEnvByName) {
  Json def = {{"environment",
               {{{"name", "MODE"}, {"value", "task"}}, {{"name", "EXTRA"}, {"value", "1"}}}}};
  Json override_json = {{"environment", {{{"name", "EXTRA"}, {"value", "2"}}}}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, override_json);
  EXPECT_EQ(
      (std::vector<std::string>{"PATH=/opt/bin:/usr/bin", "MODE=task", "EXTRA=2", "LANG=C.UTF-8"}),
      p.env);
}

TEST(MergeImageConfigTest, WorkingDirectoryAndUserOverride) {
  Json def = {{"workingDirectory", "/app"}, {"user", "1000:1000"}};
  ProcessConfig p = MergeImageConfig(BusyboxLikeImage(), def, Json::object());
  EXPECT_EQ("/app", p.cwd);
  EXPECT_EQ("1000:1000", p.user);
}

TEST(MergeImageConfigTest, DefaultsPathAndCwdForABareImage) {
  Json image = {{"config", {{"Cmd", {"/bin/true"}}}}};
  ProcessConfig p = MergeImageConfig(image, Json::object(), Json::object());
  EXPECT_EQ((std::vector<std::string>{std::string("PATH=") + kDefaultPath}), p.env);
  EXPECT_EQ("/", p.cwd);
  EXPECT_EQ("", p.user);
  EXPECT_EQ((std::vector<std::string>{"/bin/true"}), p.args);

  // A task PATH replaces the default.
  Json def = {{"environment", {{{"name", "PATH"}, {"value", "/x"}}}}};
  p = MergeImageConfig(image, def, Json::object());
  EXPECT_EQ((std::vector<std::string>{"PATH=/x"}), p.env);

  // An image config without its wrapper object works as well.
  p = MergeImageConfig(Json{{"Cmd", {"run"}}, {"WorkingDir", "/w"}}, Json::object(),
                       Json::object());
  EXPECT_EQ((std::vector<std::string>{"run"}), p.args);
  EXPECT_EQ("/w", p.cwd);
}

// ---------------------------------------------------------------------------
// ImageRef

TEST(ImageRefTest, ParsesHostPortNameAndTag) {
  auto r = ImageRef::Parse("127.0.0.1:5000/team/app:v1.2");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ("127.0.0.1:5000", r->registry);
  EXPECT_EQ("team/app", r->repository);
  EXPECT_EQ("v1.2", r->tag);
  EXPECT_EQ("", r->digest);
  EXPECT_EQ("127.0.0.1:5000/team/app:v1.2", r->ToString());

  r = ImageRef::Parse("[::1]:5000/app");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ("[::1]:5000", r->registry);
  EXPECT_EQ("app", r->repository);
  EXPECT_EQ("latest", r->tag);
}

TEST(ImageRefTest, ParsesDigestWithoutTag) {
  std::string digest = "sha256:" + std::string(64, 'a');
  auto r = ImageRef::Parse("registry.example/app@" + digest);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ("registry.example", r->registry);
  EXPECT_EQ("app", r->repository);
  EXPECT_EQ("", r->tag);
  EXPECT_EQ(digest, r->digest);
  EXPECT_EQ(digest, r->ManifestReference());
}

TEST(ImageRefTest, LeavesTheRegistryEmptyForBareNames) {
  auto r = ImageRef::Parse("busybox:1.36");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ("", r->registry);
  EXPECT_EQ("busybox", r->repository);
  EXPECT_EQ("1.36", r->tag);

  r = ImageRef::Parse("library/nginx");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ("", r->registry);
  EXPECT_EQ("library/nginx", r->repository);
  EXPECT_EQ("latest", r->tag);

  r = ImageRef::Parse("localhost/app");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ("localhost", r->registry);
}

TEST(ImageRefTest, RecognizesEcrRegistries) {
  auto r = ImageRef::Parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web/api:prod");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ("web/api", r->repository);
  auto ecr = ParseEcrRegistry(r->registry);
  ASSERT_TRUE(ecr.has_value());
  EXPECT_EQ("123456789012", ecr->account_id);
  EXPECT_EQ("eu-west-1", ecr->region);

  auto fips = ParseEcrRegistry("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com");
  ASSERT_TRUE(fips.has_value());
  EXPECT_EQ("us-gov-west-1", fips->region);
  EXPECT_TRUE(ParseEcrRegistry("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").has_value());

  EXPECT_FALSE(ParseEcrRegistry("12345.dkr.ecr.eu-west-1.amazonaws.com").has_value());
  EXPECT_FALSE(ParseEcrRegistry("123456789012.dkr.ecr.eu-west-1.example.com").has_value());
  EXPECT_FALSE(ParseEcrRegistry("127.0.0.1:5000").has_value());
}

TEST(ImageRefTest, RefusesMalformedReferences) {
  for (const std::string& bad :
       {std::string(""), std::string("UPPER"), std::string("app:"), std::string("app@sha256:12"),
        std::string("app@md5:" + std::string(32, 'a')), std::string("host:5000/App:tag"),
        std::string("a//b"), std::string("app:bad tag")}) {
    auto r = ImageRef::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ("InvalidImageReference", r.error().code);
    }
  }
}

// ---------------------------------------------------------------------------
// Registry client against an in-test fake registry

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct HttpReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct HttpRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
};

// A one-thread HTTP/1.1 server on 127.0.0.1 answering every request with a
// handler and closing the connection after it.
class FakeHttpServer {
 public:
  explicit FakeHttpServer(std::function<HttpReply(const HttpRequest&)> handler)
      : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(0, ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
    EXPECT_EQ(0, ::listen(listen_fd_, 16));
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }

  ~FakeHttpServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }

  int port() const { return port_; }

  std::vector<HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) {
        continue;
      }
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      Handle(fd);
      ::close(fd);
    }
  }

  void Handle(int fd) {
    std::string data;
    char buf[4096];
    while (data.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 2000) <= 0) {
        return;
      }
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) {
        return;
      }
      data.append(buf, static_cast<size_t>(n));
    }
    HttpRequest req;
    std::istringstream in(data.substr(0, data.find("\r\n\r\n")));
    std::string line;
    std::getline(in, line);
    std::istringstream first(line);
    first >> req.method >> req.target;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') {
        line.pop_back();
      }
      size_t colon = line.find(':');
      if (colon == std::string::npos) {
        continue;
      }
      std::string name = line.substr(0, colon);
      for (auto& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      size_t v = line.find_first_not_of(' ', colon + 1);
      req.headers[name] = v == std::string::npos ? "" : line.substr(v);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    HttpReply reply = handler_(req);
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
    for (const auto& [k, v] : reply.headers) {
      out += k + ": " + v + "\r\n";
    }
    out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
    out += "Connection: close\r\n\r\n";
    out += reply.body;
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fd, out.data() + done, out.size() - done);
      if (n <= 0) {
        return;
      }
      done += static_cast<size_t>(n);
    }
  }

  std::function<HttpReply(const HttpRequest&)> handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<HttpRequest> requests_;
};

// Content of a small single-layer image, served by FakeRegistry.
struct FakeImage {
  std::string layer;
  std::string layer_digest;
  std::string config;
  std::string config_digest;
  std::string manifest;
  std::string manifest_digest;
};

FakeImage MakeFakeImage(const std::string& work_dir, const std::string& marker) {
  FakeImage img;
  std::string path = work_dir + "/fake-layer-" + marker;
  {
    LayerWriter w(path, Compression::kGzip);
    w.Dir("etc");
    w.File("etc/marker", marker);
  }
  img.layer = ReadFile(path);
  img.layer_digest = Sha256OfString(img.layer);
  Json config = {
      {"architecture", "amd64"},
      {"os", "linux"},
      {"config", {{"Cmd", {"/bin/sh"}}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + std::string(64, '0')}}}}};
  img.config = config.dump();
  img.config_digest = Sha256OfString(img.config);
  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", img.config_digest},
                     {"size", img.config.size()}}},
                   {"layers",
                    {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                      {"digest", img.layer_digest},
                      {"size", img.layer.size()}}}}};
  img.manifest = manifest.dump();
  img.manifest_digest = Sha256OfString(img.manifest);
  return img;
}

// Serves /v2/<repo>/manifests and /blobs from maps, optionally behind Basic
// or Bearer auth, with a token endpoint at /token.
class FakeRegistry {
 public:
  enum class Auth { kNone, kBasic, kBearer };

  explicit FakeRegistry(Auth auth = Auth::kNone)
      : auth_(auth), server_([this](const HttpRequest& r) { return Route(r); }) {}

  std::string host() const { return "127.0.0.1:" + std::to_string(server_.port()); }

  FakeHttpServer& server() { return server_; }

  void AddImage(const std::string& repo, const std::string& tag, const FakeImage& img) {
    std::lock_guard<std::mutex> lock(mu_);
    manifests_[repo + "/" + tag] = {"application/vnd.oci.image.manifest.v1+json", img.manifest};
    manifests_[repo + "/" + img.manifest_digest] = manifests_[repo + "/" + tag];
    blobs_[img.layer_digest] = img.layer;
    blobs_[img.config_digest] = img.config;
  }

  void AddManifest(const std::string& repo, const std::string& ref, const std::string& type,
                   const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    manifests_[repo + "/" + ref] = {type, body};
  }

  void SetBlob(const std::string& digest, const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    blobs_[digest] = body;
  }

  void SetOverride(std::function<std::optional<HttpReply>(const HttpRequest&)> f) {
    std::lock_guard<std::mutex> lock(mu_);
    override_ = std::move(f);
  }

  int TokenRequests() {
    int n = 0;
    for (const auto& r : server_.requests()) {
      n += r.target.rfind("/token", 0) == 0 ? 1 : 0;
    }
    return n;
  }

  static constexpr const char* kUser = "AWS";
  static constexpr const char* kPassword = "s3cret";
  static constexpr const char* kToken = "tok-123";

 private:
  static HttpReply OciError(int status, const std::string& code, const std::string& message) {
    Json body = {{"errors", {{{"code", code}, {"message", message}}}}};
    return {status, {{"Content-Type", "application/json"}}, body.dump()};
  }

  HttpReply Route(const HttpRequest& req) {
    std::lock_guard<std::mutex> lock(mu_);
    if (override_) {
      if (auto reply = override_(req)) {
        return *reply;
      }
    }
    std::string basic = "Basic " + std::string("QVdTOnMzY3JldA==");  // AWS:s3cret
    if (req.target.rfind("/token", 0) == 0) {
      auto it = req.headers.find("authorization");
      if (it == req.headers.end() || it->second != basic) {
        return OciError(401, "UNAUTHORIZED", "bad credentials");
      }
      return {200, {{"Content-Type", "application/json"}}, Json{{"token", kToken}}.dump()};
    }
    auto it = req.headers.find("authorization");
    std::string given = it == req.headers.end() ? "" : it->second;
    if (auth_ == Auth::kBasic && given != basic) {
      HttpReply r = OciError(401, "UNAUTHORIZED", "authentication required");
      r.headers.push_back({"WWW-Authenticate", "Basic realm=\"fake\""});
      return r;
    }
    if (auth_ == Auth::kBearer && given != std::string("Bearer ") + kToken) {
      HttpReply r = OciError(401, "UNAUTHORIZED", "authentication required");
      r.headers.push_back(
          {"WWW-Authenticate",
           "Bearer realm=\"http://" + host() +
               "/token\",service=\"fake-registry\",scope=\"repository:" + "t/app:pull\""});
      return r;
    }

    const std::string prefix = "/v2/";
    size_t m = req.target.find("/manifests/");
    size_t b = req.target.find("/blobs/");
    if (req.target.rfind(prefix, 0) == 0 && m != std::string::npos) {
      std::string repo = req.target.substr(prefix.size(), m - prefix.size());
      std::string ref = req.target.substr(m + 11);
      auto found = manifests_.find(repo + "/" + ref);
      if (found == manifests_.end()) {
        return OciError(404, "MANIFEST_UNKNOWN", "manifest unknown");
      }
      return {200,
              {{"Content-Type", found->second.first},
               {"Docker-Content-Digest", Sha256OfString(found->second.second)}},
              found->second.second};
    }
    if (req.target.rfind(prefix, 0) == 0 && b != std::string::npos) {
      std::string digest = req.target.substr(b + 7);
      auto found = blobs_.find(digest);
      if (found == blobs_.end()) {
        return OciError(404, "BLOB_UNKNOWN", "blob unknown to registry");
      }
      return {200, {{"Content-Type", "application/octet-stream"}}, found->second};
    }
    return OciError(404, "NAME_UNKNOWN", "unknown path");
  }

  Auth auth_;
  std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> manifests_;
  std::map<std::string, std::string> blobs_;
  std::function<std::optional<HttpReply>(const HttpRequest&)> override_;
  FakeHttpServer server_;
};

RegistryClientOptions PlainHttp() {
  RegistryClientOptions o;
  o.plain_http = true;
  o.retry_delay_ms = 10;
  o.architecture = "amd64";
  return o;
}

ImageRef Ref(const std::string& text) {
  auto r = ImageRef::Parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? *r : ImageRef{};
}

TEST(RegistryClientTest, AnswersTheBearerTokenChallenge) {
  TempDir tmp;
  FakeImage img = MakeFakeImage(tmp.path(), "bearer");
  FakeRegistry registry(FakeRegistry::Auth::kBearer);
  registry.AddImage("t/app", "v1", img);
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());

  RegistryClient client(PlainHttp());
  auto pulled = client.Pull(Ref(registry.host() + "/t/app:v1"), store,
                            Credentials{FakeRegistry::kUser, FakeRegistry::kPassword});
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  EXPECT_EQ(img.manifest_digest, pulled->digest);
  EXPECT_EQ(img.manifest_digest, pulled->manifest_digest);
  EXPECT_EQ(img.config_digest, pulled->config_digest);
  ASSERT_EQ(1u, pulled->layers.size());
  EXPECT_EQ("bearer", ReadFile(pulled->layers[0].path + "/etc/marker"));
  EXPECT_EQ(1, registry.TokenRequests());
  bool saw_scope = false;
  for (const auto& r : registry.server().requests()) {
    if (r.target.rfind("/token", 0) == 0) {
      saw_scope = r.target.find("scope=repository%3At%2Fapp%3Apull") != std::string::npos &&
                  r.target.find("service=fake-registry") != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_scope);

  // Wrong credentials: the token service refuses and the pull says so.
  ImageStore other(tmp.File("store2"));
  ASSERT_TRUE(other.Init().ok());
  auto denied = client.Pull(Ref(registry.host() + "/t/app:v1"), other,
                            Credentials{FakeRegistry::kUser, "wrong"});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ("CannotPullContainerError", denied.error().code);
  EXPECT_EQ(401, denied.error().status);
  EXPECT_NE(std::string::npos, denied.error().message.find("pull access denied"))
      << denied.error().message;
}

TEST(RegistryClientTest, UsesBasicAuthWhenAsked) {
  TempDir tmp;
  FakeImage img = MakeFakeImage(tmp.path(), "basic");
  FakeRegistry registry(FakeRegistry::Auth::kBasic);
  registry.AddImage("t/app", "v1", img);
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  RegistryClient client(PlainHttp());

  auto anonymous = client.Pull(Ref(registry.host() + "/t/app:v1"), store, Credentials{});
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ("pull image manifest has been retried 0 time(s): failed to resolve ref " +
                registry.host() + "/t/app:v1: pull access denied, repository does not exist " +
                "or may require authorization: no basic auth credentials",
            anonymous.error().message);

  auto pulled = client.Pull(Ref(registry.host() + "/t/app:v1"), store,
                            Credentials{FakeRegistry::kUser, FakeRegistry::kPassword});
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  EXPECT_EQ("basic", ReadFile(pulled->layers[0].path + "/etc/marker"));
}

TEST(RegistryClientTest, AnAuthFileEntryForTheHostAnswersTheBearerChallenge) {
  TempDir tmp;
  FakeImage img = MakeFakeImage(tmp.path(), "from-auth-file");
  FakeRegistry registry(FakeRegistry::Auth::kBearer);
  registry.AddImage("t/app", "v1", img);
  std::string auth = Base64Encode(std::string(FakeRegistry::kUser) + ":" +
                                  FakeRegistry::kPassword);
  WriteFile(tmp.File("config.json"),
            Json{{"auths", {{"http://" + registry.host() + "/", {{"auth", auth}}},
                            {"127.0.0.2:1", {{"auth", Base64Encode("x:y")}}}}}}
                .dump());
  auto auths = LoadRegistryAuth(tmp.File("config.json"));
  ASSERT_TRUE(auths.ok()) << auths.error().message;
  auto creds = FindRegistryCredentials(*auths, registry.host());
  ASSERT_TRUE(creds.has_value());
  EXPECT_EQ("AWS", creds->username);
  EXPECT_EQ("s3cret", creds->password);

  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  RegistryClient client(PlainHttp());
  auto pulled = client.Pull(Ref(registry.host() + "/t/app:v1"), store, *creds);
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  EXPECT_EQ("from-auth-file", ReadFile(pulled->layers[0].path + "/etc/marker"));
  EXPECT_EQ(1, registry.TokenRequests());

  // Without an entry for the host the pull is anonymous, and the token service refuses it.
  EXPECT_FALSE(FindRegistryCredentials(*auths, "127.0.0.3:1").has_value());
  ImageStore other(tmp.File("store2"));
  ASSERT_TRUE(other.Init().ok());
  auto denied = client.Pull(Ref(registry.host() + "/t/app:v1"), other, Credentials{});
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(401, denied.error().status);
}

TEST(RegistryAuthTest, ReadsAuthOrUsernameAndPasswordAndNormalizesHosts) {
  Json doc = {{"auths",
               {{"https://Registry.Example.com:5000/v1/", {{"auth", Base64Encode("me:p:w")}}},
                {"other.example", {{"username", "u"}, {"password", "p"}}},
                {"helper.example", {{"identitytoken", "opaque"}}}}},
              {"credHelpers", {{"x.example", "pass"}}}};
  auto auths = ParseRegistryAuth(doc.dump());
  ASSERT_TRUE(auths.ok()) << auths.error().message;
  EXPECT_EQ(2u, auths->size());
  auto first = FindRegistryCredentials(*auths, "registry.example.com:5000");
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ("me", first->username);
  EXPECT_EQ("p:w", first->password);  // only the first colon separates
  auto second = FindRegistryCredentials(*auths, "OTHER.example");
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ("u", second->username);
  EXPECT_EQ("p", second->password);
  EXPECT_FALSE(FindRegistryCredentials(*auths, "helper.example").has_value());
  EXPECT_FALSE(FindRegistryCredentials(*auths, "registry.example.com").has_value());

  auto none = ParseRegistryAuth("{}");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(RegistryAuthTest, RefusesMalformedFiles) {
  for (const std::string& text :
       {std::string("not json"), std::string("[]"), std::string(R"({"auths": []})"),
        std::string(R"({"auths": {"h": {"auth": "!!!!"}}})"),
        Json{{"auths", {{"h", {{"auth", Base64Encode("no-colon")}}}}}}.dump(),
        std::string(R"({"auths": {"h": "x"}})")}) {
    auto parsed = ParseRegistryAuth(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ("InvalidRegistryAuth", parsed.error().code) << text;
  }
  auto missing = LoadRegistryAuth("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ("InvalidRegistryAuth", missing.error().code);
}

TEST(RegistryClientTest, PicksTheHostPlatformFromAnIndex) {
  TempDir tmp;
  FakeImage amd = MakeFakeImage(tmp.path(), "amd64");
  FakeRegistry registry;
  registry.AddImage("t/multi", amd.manifest_digest, amd);
  std::string arm_digest = "sha256:" + std::string(64, 'e');  // never fetched
  Json index = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.index.v1+json"},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", arm_digest},
                   {"size", 100},
                   {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                  {{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", amd.manifest_digest},
                   {"size", amd.manifest.size()},
                   {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
  std::string index_body = index.dump();
  registry.AddManifest("t/multi", "latest", "application/vnd.oci.image.index.v1+json", index_body);
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());

  auto pulled = RegistryClient(PlainHttp()).Pull(Ref(registry.host() + "/t/multi"), store, {});
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;
  EXPECT_EQ(Sha256OfString(index_body), pulled->digest);
  EXPECT_EQ(amd.manifest_digest, pulled->manifest_digest);
  EXPECT_EQ("amd64", ReadFile(pulled->layers[0].path + "/etc/marker"));
  for (const auto& r : registry.server().requests()) {
    EXPECT_EQ(std::string::npos, r.target.find(arm_digest)) << r.target;
  }

  RegistryClientOptions s390 = PlainHttp();
  s390.architecture = "s390x";
  auto none = RegistryClient(s390).Pull(Ref(registry.host() + "/t/multi"), store, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(std::string::npos, none.error().message.find("no matching manifest for linux/s390x"));
}

TEST(RegistryClientTest, RefusesABlobWhoseContentDoesNotMatchItsDigest) {
  TempDir tmp;
  FakeImage img = MakeFakeImage(tmp.path(), "tampered");
  FakeRegistry registry;
  registry.AddImage("t/app", "v1", img);
  std::string tampered = img.layer;
  tampered[tampered.size() / 2] ^= 0x55;
  registry.SetBlob(img.layer_digest, tampered);
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());

  auto pulled = RegistryClient(PlainHttp()).Pull(Ref(registry.host() + "/t/app:v1"), store, {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ("CannotPullContainerError", pulled.error().code);
  EXPECT_NE(std::string::npos, pulled.error().message.find("pull layer " + img.layer_digest))
      << pulled.error().message;
  EXPECT_NE(std::string::npos, pulled.error().message.find("digest mismatch"));
  EXPECT_FALSE(store.HasBlob(img.layer_digest));
  EXPECT_FALSE(store.HasLayer(img.layer_digest));
  EXPECT_TRUE(fs::is_empty(store.root() + "/tmp"));
}

TEST(RegistryClientTest, RefusesRedirectsToAnotherHost) {
  TempDir tmp;
  FakeImage img = MakeFakeImage(tmp.path(), "redirect");
  FakeRegistry registry;
  registry.AddImage("t/app", "v1", img);
  std::string elsewhere = "http://localhost:" + std::to_string(FreePort()) + "/blob";
  registry.SetOverride([&](const HttpRequest& r) -> std::optional<HttpReply> {
    if (r.target.find("/blobs/") != std::string::npos) {
      return HttpReply{307, {{"Location", elsewhere}}, ""};
    }
    return std::nullopt;
  });
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  auto pulled = RegistryClient(PlainHttp()).Pull(Ref(registry.host() + "/t/app:v1"), store, {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_NE(std::string::npos, pulled.error().message.find("not on the registry host"))
      << pulled.error().message;
}

TEST(RegistryClientTest, RetriesServerErrorsAndReportsTheRetries) {
  TempDir tmp;
  FakeRegistry registry;
  int calls = 0;
  registry.SetOverride([&](const HttpRequest& r) -> std::optional<HttpReply> {
    ++calls;
    return HttpReply{503, {}, "busy"};
  });
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  auto pulled = RegistryClient(PlainHttp()).Pull(Ref(registry.host() + "/t/app:v1"), store, {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(3, calls);
  EXPECT_EQ(502, pulled.error().status);
  EXPECT_NE(std::string::npos,
            pulled.error().message.find("pull image manifest has been retried 2 time(s)"))
      << pulled.error().message;
}

TEST(RegistryClientTest, RefusesReferencesWithoutARegistryOrAReachableOne) {
  TempDir tmp;
  ImageStore store(tmp.File("store"));
  ASSERT_TRUE(store.Init().ok());
  auto no_host = RegistryClient(PlainHttp()).Pull(Ref("busybox:latest"), store, {});
  ASSERT_FALSE(no_host.ok());
  EXPECT_NE(std::string::npos, no_host.error().message.find("names no registry"));

  RegistryClientOptions once = PlainHttp();
  once.attempts = 1;
  std::string host = "127.0.0.1:" + std::to_string(FreePort());
  auto refused = RegistryClient(once).Pull(Ref(host + "/t/app:v1"), store, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(502, refused.error().status);
  EXPECT_NE(std::string::npos, refused.error().message.find("failed to do request"))
      << refused.error().message;
}

// ---------------------------------------------------------------------------
// Registry client against Debian's docker-registry, fed by skopeo

int RunShell(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool Listening(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

class DockerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"/usr/bin/docker-registry", "/usr/bin/skopeo", "/bin/busybox"}) {
      if (::access(tool, X_OK) != 0) {
        GTEST_SKIP() << tool << " is not installed (scripts/setup installs it)";
      }
    }
    port_ = FreePort();
    std::string config = tmp_.File("registry.yml");
    WriteFile(config,
              "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
              "    rootdirectory: " +
                  (tmp_.File("registry-data")) + "\nhttp:\n  addr: 127.0.0.1:" + std::to_string(port_) +
                  "\n");
    std::string log = tmp_.File("registry.log");
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl("/usr/bin/docker-registry", "docker-registry", "serve", config.c_str(), nullptr);
      ::_exit(127);
    }
    // Wait until it answers /v2/.
    for (int i = 0; i < 200; ++i) {
      if (Listening(port_)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "docker-registry did not start: " << ReadFile(log);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
  }

  std::string Host() const { return "127.0.0.1:" + std::to_string(port_); }

  TempDir tmp_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// An OCI image layout holding one busybox layer, written by hand.
struct OciLayout {
  std::string manifest_digest;
  std::string config_digest;
  std::string layer_digest;
};

OciLayout WriteBusyboxLayout(const std::string& dir) {
  OciLayout out;
  fs::create_directories(dir + "/blobs/sha256");
  auto put = [&](const std::string& data) {
    std::string digest = Sha256OfString(data);
    WriteFile(dir + "/blobs/sha256/" + digest.substr(7), data);
    return digest;
  };

  std::string layer_path = dir + "/layer.tmp";
  {
    LayerWriter w(layer_path, Compression::kGzip);
    w.Dir("bin");
    w.File("bin/busybox", ReadFile("/bin/busybox"), 0755);
    w.Symlink("bin/sh", "busybox");
    w.Dir("tmp", 01777);
  }
  std::string layer = ReadFile(layer_path);
  fs::remove(layer_path);
  out.layer_digest = put(layer);

  Json config = {
      {"architecture", "amd64"},
      {"os", "linux"},
      {"config", {{"Cmd", {"/bin/sh"}}, {"Env", {"PATH=/bin"}}}},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {"sha256:" + std::string(64, '1')}}}}};
  std::string config_text = config.dump();
  out.config_digest = put(config_text);

  Json manifest = {{"schemaVersion", 2},
                   {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"config",
                    {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                     {"digest", out.config_digest},
                     {"size", config_text.size()}}},
                   {"layers",
                    {{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                      {"digest", out.layer_digest},
                      {"size", layer.size()}}}}};
  std::string manifest_text = manifest.dump();
  out.manifest_digest = put(manifest_text);

  Json index = {{"schemaVersion", 2},
                {"manifests",
                 {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                   {"digest", out.manifest_digest},
                   {"size", manifest_text.size()},
                   {"annotations", {{"org.opencontainers.image.ref.name", "latest"}}}}}}};
  WriteFile(dir + "/index.json", index.dump());
  WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  return out;
}

TEST_F(DockerRegistryTest, PullsAnImagePushedBySkopeoAndSkipsKnownBlobsOnRepull) {
  OciLayout layout = WriteBusyboxLayout(tmp_.File("oci"));
  WriteFile(tmp_.File("policy.json"), R"({"default":[{"type":"insecureAcceptAnything"}]})");
  std::string push = "/usr/bin/skopeo --policy " + (tmp_.File("policy.json")) +
                     " copy --quiet --dest-tls-verify=false --dest-no-creds oci:" + (tmp_.File("oci")) +
                     ":latest docker://" + Host() + "/t/busybox:latest > " + (tmp_.File("skopeo.log")) +
                     " 2>&1";
  ASSERT_EQ(0, RunShell(push)) << ReadFile(tmp_.File("skopeo.log"));

  ImageStore store(tmp_.File("store"));
  ASSERT_TRUE(store.Init().ok());
  RegistryClient client(PlainHttp());
  auto pulled = client.Pull(Ref(Host() + "/t/busybox:latest"), store, {});
  ASSERT_TRUE(pulled.ok()) << pulled.error().message;

  EXPECT_EQ(layout.manifest_digest, pulled->digest);
  EXPECT_EQ(layout.manifest_digest, pulled->manifest_digest);
  EXPECT_EQ(layout.config_digest, pulled->config_digest);
  EXPECT_EQ("application/vnd.oci.image.manifest.v1+json", pulled->manifest_media_type);
  EXPECT_EQ(Json({"/bin/sh"}), pulled->config["config"]["Cmd"]);
  ASSERT_EQ(1u, pulled->layers.size());
  EXPECT_EQ(layout.layer_digest, pulled->layers[0].digest);
  EXPECT_EQ(store.LayerPath(layout.layer_digest), pulled->layers[0].path);
  EXPECT_EQ(2u, pulled->blobs_downloaded);
  EXPECT_EQ(1u, store.unpacks_performed());

  std::string busybox = pulled->layers[0].path + "/bin/busybox";
  EXPECT_EQ(*Sha256OfFile("/bin/busybox"), *Sha256OfFile(busybox));
  struct stat st;
  ASSERT_EQ(0, ::stat(busybox.c_str(), &st));
  EXPECT_EQ(0755u, st.st_mode & 07777);
  EXPECT_EQ("busybox", fs::read_symlink(pulled->layers[0].path + "/bin/sh").string());
  ASSERT_EQ(0, ::stat((pulled->layers[0].path + "/tmp").c_str(), &st));
  EXPECT_EQ(01777u, st.st_mode & 07777);
  EXPECT_TRUE(store.HasBlob(layout.layer_digest));
  EXPECT_TRUE(store.HasBlob(layout.config_digest));

  // Again, by tag and by digest: nothing is downloaded or unpacked.
  auto again = client.Pull(Ref(Host() + "/t/busybox:latest"), store, {});
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(0u, again->blobs_downloaded);
  EXPECT_EQ(0u, again->bytes_downloaded);
  auto by_digest = client.Pull(Ref(Host() + "/t/busybox@" + layout.manifest_digest), store, {});
  ASSERT_TRUE(by_digest.ok()) << by_digest.error().message;
  EXPECT_EQ(0u, by_digest->blobs_downloaded);
  EXPECT_EQ(layout.manifest_digest, by_digest->digest);
  EXPECT_EQ(1u, store.unpacks_performed());
  EXPECT_EQ((std::set<std::string>{layout.config_digest, layout.layer_digest}),
            by_digest->StoreDigests());

  // A missing tag reads like ECS's CannotPullContainerError reason.
  auto missing = client.Pull(Ref(Host() + "/t/busybox:nope"), store, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ("CannotPullContainerError", missing.error().code);
  EXPECT_EQ(404, missing.error().status);
  EXPECT_EQ("pull image manifest has been retried 0 time(s): failed to resolve ref " + Host() +
                "/t/busybox:nope: not found",
            missing.error().message);
}

}  // namespace
}  // namespace berth::agent
