#include "common/config.h"

#include <fstream>

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace berth {
namespace {

std::string Write(const testutil::TempDir& dir, const std::string& text) {
  std::string path = dir.File("berthd.conf");
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigFile, SetsEveryKindOfKey) {
  testutil::TempDir dir("berth-config");
  Config c;
  auto st = LoadConfigFile(Write(dir,
                                 "# comment\n"
                                 "listen = 127.0.0.1:9000\n"
                                 "data_dir = /srv/berth\n"
                                 "agent = false\n"
                                 "allocation-factor = 2.5\n"
                                 "metadata-port = 51700\n"
                                 "stop-tasks-on-exit = yes\n"
                                 "\n"
                                 "node-timeout = 90\n"),
                           c);
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(c.listen, "127.0.0.1:9000");
  EXPECT_EQ(c.data_dir, "/srv/berth");
  EXPECT_FALSE(c.agent);
  EXPECT_DOUBLE_EQ(c.allocation_factor, 2.5);
  EXPECT_EQ(c.metadata_port, 51700);
  EXPECT_TRUE(c.stop_tasks_on_exit);
  EXPECT_DOUBLE_EQ(c.node_timeout_seconds, 90);
  EXPECT_EQ(c.region, "us-east-1");  // untouched keys keep their defaults
}

TEST(ConfigFile, RefusesWhatItCannotRead) {
  testutil::TempDir dir("berth-config");
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& k : {Case{"bogus = 1\n", "berthd.conf:1: unknown key bogus"},
                        Case{"# x\nmetadata-port = abc\n", "berthd.conf:2: bad value for "
                                                           "metadata-port: abc"},
                        Case{"lb-threads = 4x\n", "bad value for lb-threads: 4x"},
                        Case{"agent = maybe\n", "bad value for agent: maybe"},
                        Case{"listen\n", "berthd.conf:1: expected key = value"}}) {
    Config c;
    auto st = LoadConfigFile(Write(dir, k.text), c);
    ASSERT_FALSE(st.ok()) << k.text;
    EXPECT_NE(st.error().message.find(k.error), std::string::npos) << st.error().message;
    EXPECT_EQ(c.metadata_port, 51679);
  }
  Config c;
  EXPECT_FALSE(LoadConfigFile(dir.File("missing.conf"), c).ok());
}

}  // namespace
}  // namespace berth
