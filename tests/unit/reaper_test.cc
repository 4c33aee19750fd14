// SPDX-License-Identifier: Apache-2.0
#include "agent/reaper.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <filesystem>
#include <thread>

#include "agent/runtime_util.h"

namespace berth::agent {
namespace {

using std::chrono::milliseconds;

// The reaper waits for every child of the process; stop it after these tests so that other
// suites in this binary can wait for their own children.
class ReaperTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { Reaper::Instance().Stop(); }
};

TEST_F(ReaperTest, ExitCodeConvention) {
  EXPECT_EQ(3, ProcessExitFromWaitStatus(3 << 8).exit_code);
  ProcessExit killed = ProcessExitFromWaitStatus(SIGKILL);
  EXPECT_EQ(137, killed.exit_code);
  EXPECT_EQ(SIGKILL, killed.signal);
  EXPECT_EQ(143, ProcessExitFromWaitStatus(SIGTERM).exit_code);
}

TEST_F(ReaperTest, WaitReturnsExitStatus) {
  auto pid =
      Reaper::Instance().Spawn({{"/bin/sh", "-c", "exit 3"}, std::nullopt, -1, -1, -1, false});
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  auto exit = Reaper::Instance().Wait(*pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(3, exit->exit_code);
  EXPECT_EQ(0, exit->signal);
  // The record is consumed.
  EXPECT_FALSE(Reaper::Instance().Peek(*pid).has_value());
}

TEST_F(ReaperTest, SignalDeathIs128PlusSignal) {
  auto pid = Reaper::Instance().Spawn({{"sleep", "30"}, std::nullopt, -1, -1, -1, false});
  ASSERT_TRUE(pid.ok());
  EXPECT_FALSE(Reaper::Instance().Wait(*pid, milliseconds(50)).has_value());
  kill(*pid, SIGTERM);
  auto exit = Reaper::Instance().Wait(*pid, milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(143, exit->exit_code);
  EXPECT_EQ(SIGTERM, exit->signal);
}

TEST_F(ReaperTest, ExitBeforeWaitIsKept) {
  auto pid = Reaper::Instance().Spawn({{"true"}, std::nullopt, -1, -1, -1, false});
  ASSERT_TRUE(pid.ok());
  for (int i = 0; i < 200 && !Reaper::Instance().Peek(*pid); ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_TRUE(Reaper::Instance().Peek(*pid).has_value());
  auto exit = Reaper::Instance().Wait(*pid, milliseconds(0));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(0, exit->exit_code);
}

TEST_F(ReaperTest, OrphansOfASubreaperAreCollected) {
  ASSERT_TRUE(Reaper::SetSubreaper(true).ok());
  // The shell starts a grandchild and exits at once; the grandchild becomes our child.
  std::string pid_file = "/tmp/berth-reaper-orphan-" + std::to_string(getpid());
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "sleep 0.3 & echo $! > " + pid_file};
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok());
  auto text = rtutil::ReadFile(pid_file);
  ASSERT_TRUE(text.ok());
  int64_t orphan = 0;
  ASSERT_TRUE(rtutil::ParseI64(*text, &orphan));
  auto exit = Reaper::Instance().Wait(static_cast<pid_t>(orphan), milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(0, exit->exit_code);
  unlink(pid_file.c_str());
  ASSERT_TRUE(Reaper::SetSubreaper(false).ok());
}

TEST_F(ReaperTest, MissingProgramIsNotFound) {
  auto pid = Reaper::Instance().Spawn({{"/nonexistent/program"}, std::nullopt, -1, -1, -1, false});
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(rtutil::kNotFound, pid.error().code);
}

TEST_F(ReaperTest, RunProcessFeedsStdinAndCapturesOutput) {
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "tr a-z A-Z; echo oops >&2; exit 4"};
  p.stdin_data = "hello\n";
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok()) << run.error().message;
  EXPECT_EQ("HELLO\n", run->stdout_data);
  EXPECT_EQ("oops\n", run->stderr_data);
  EXPECT_EQ(4, run->exit.exit_code);
  EXPECT_FALSE(run->timed_out);
}

TEST_F(ReaperTest, RunProcessPassesOnlyTheGivenEnvironment) {
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "echo \"$FOO:$HOME\""};
  p.env = std::vector<std::string>{"FOO=bar"};
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ("bar:\n", run->stdout_data);
}

TEST_F(ReaperTest, RunProcessSurvivesAChildThatIgnoresStdin) {
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "exec 0<&-; echo done"};
  p.stdin_data = std::string(1 << 20, 'x');  // more than a pipe holds
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ("done\n", run->stdout_data);
}

TEST_F(ReaperTest, RunProcessKillsTheGroupAtTimeout) {
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "sleep 30 & sleep 30"};
  p.timeout = milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->timed_out);
  EXPECT_EQ(137, run->exit.exit_code);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(ReaperTest, RunProcessAppendsToFiles) {
  std::string path = "/tmp/berth-reaper-out-" + std::to_string(getpid());
  unlink(path.c_str());
  for (const char* word : {"one", "two"}) {
    ProcessOptions p;
    p.argv = {"/bin/echo", word};
    p.stdout_path = path;
    auto run = RunProcess(p);
    ASSERT_TRUE(run.ok());
    EXPECT_TRUE(run->stdout_data.empty());
  }
  auto text = rtutil::ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ("one\ntwo\n", *text);
  unlink(path.c_str());
}

// Fields 5 (process group) and 6 (session) of /proc/<pid>/stat. The command field may hold
// spaces, so parsing starts after its closing parenthesis.
std::pair<pid_t, pid_t> GroupAndSession(pid_t pid) {
  auto stat = rtutil::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) {
    return {-1, -1};
  }
  std::string rest = stat->substr(stat->rfind(')') + 2);
  char state = 0;
  int ppid = 0, pgrp = 0, session = 0;
  if (std::sscanf(rest.c_str(), "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4) {
    return {-1, -1};
  }
  return {pgrp, session};
}

TEST_F(ReaperTest, NewSessionDetachesTheChildFromTheCallersSessionAndGroup) {
  SpawnOptions options;
  options.argv = {"sleep", "30"};
  options.new_session = true;
  auto pid = Reaper::Instance().Spawn(options);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  auto [pgrp, session] = GroupAndSession(*pid);
  kill(*pid, SIGKILL);
  ASSERT_TRUE(Reaper::Instance().Wait(*pid, milliseconds(5000)).has_value());
  EXPECT_EQ(*pid, session);
  EXPECT_EQ(*pid, pgrp);
  EXPECT_NE(getsid(0), session);
}

TEST_F(ReaperTest, WithoutNewSessionTheChildStaysInTheCallersSession) {
  SpawnOptions options;
  options.argv = {"sleep", "30"};
  options.new_process_group = true;
  auto pid = Reaper::Instance().Spawn(options);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  auto [pgrp, session] = GroupAndSession(*pid);
  kill(*pid, SIGKILL);
  ASSERT_TRUE(Reaper::Instance().Wait(*pid, milliseconds(5000)).has_value());
  EXPECT_EQ(getsid(0), session);
  EXPECT_EQ(*pid, pgrp);
}

TEST_F(ReaperTest, RunProcessInANewSessionReportsItsOwnSession) {
  ProcessOptions p;
  p.argv = {"/bin/sh", "-c", "cut -d' ' -f5,6 /proc/$$/stat"};
  p.new_session = true;
  p.kill_process_group = false;
  auto run = RunProcess(p);
  ASSERT_TRUE(run.ok());
  int pgrp = 0, session = 0;
  ASSERT_EQ(2, std::sscanf(run->stdout_data.c_str(), "%d %d", &pgrp, &session));
  EXPECT_EQ(pgrp, session);
  EXPECT_NE(getsid(0), session);
}

TEST_F(ReaperTest, StopLeavesWaitpidToOthers) {
  auto pid = Reaper::Instance().Spawn({{"true"}, std::nullopt, -1, -1, -1, false});
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(Reaper::Instance().Wait(*pid, milliseconds(5000)).has_value());
  Reaper::Instance().Stop();
  pid_t child = fork();
  if (child == 0) {
    _exit(9);
  }
  int status = 0;
  ASSERT_EQ(child, waitpid(child, &status, 0));
  EXPECT_EQ(9, WEXITSTATUS(status));
}

}  // namespace
}  // namespace berth::agent
