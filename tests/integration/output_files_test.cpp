// Output paths through the real binary (issue 15 items 4 and 5): devices, FIFOs and symlinks are
// written through or to their target, never replaced; ENOSPC is an error; SIGINT/SIGTERM during a
// write leave no "<out>.tmp.<pid>" behind, and stale temporaries of dead processes are swept.
// LOOKAHEAD_TEST_BINARY (environment) runs these against another build, e.g. an older one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

#include "tests/integration/cli_run.h"

namespace {

namespace fs = std::filesystem;

using CliResult = lookahead::test::CliRun;
using lookahead::test::run_shell;
std::string binary() { return lookahead::test::test_binary(); }

CliResult run(const std::string& args) { return run_shell(binary() + " " + args + " 2>&1"); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kNetRun = "net run --topology fat_tree --k 4 --workload permutation --bytes 20000 --lb spray";

class OutputFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lookahead_output_files_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Names in the test directory (to check that nothing else was left there).
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& e : fs::directory_iterator(dir_)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
  fs::path dir_;
};

TEST_F(OutputFiles, SymlinkToDevNullIsWrittenThroughAndStaysALink) {
  fs::create_symlink("/dev/null", path("null"));
  CliResult r = run(kNetRun + " --out " + path("null"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_symlink(path("null")));
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  EXPECT_EQ(names(), std::vector<std::string>{"null"});
}

TEST_F(OutputFiles, FullDeviceIsAnErrorNamingThePath) {
  fs::create_symlink("/dev/full", path("full"));
  CliResult r = run(kNetRun + " --out " + path("full"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("lookahead: error: cannot write '" + path("full") + "': No space left on device"),
            std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_symlink(path("full")));
  EXPECT_EQ(names(), std::vector<std::string>{"full"});
}

TEST_F(OutputFiles, ConvertToFullDeviceFailsAndConvertToNullSucceeds) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  fs::create_symlink("/dev/full", path("full.gguf"));
  fs::create_symlink("/dev/null", path("null.gguf"));
  CliResult bad = run("moe convert --quiet --type q8_0 --model " + kModel + " --out " + path("full.gguf"));
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("No space left on device"), std::string::npos) << bad.output;
  CliResult good = run("moe convert --quiet --type q8_0 --model " + kModel + " --out " + path("null.gguf"));
  EXPECT_EQ(good.status, 0) << good.output;
  EXPECT_TRUE(fs::is_symlink(path("full.gguf")));
  EXPECT_TRUE(fs::is_symlink(path("null.gguf")));
  EXPECT_EQ(names(), (std::vector<std::string>{"full.gguf", "null.gguf"}));
}

TEST_F(OutputFiles, FifoIsWrittenThroughToItsReader) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  // The reader runs in the same shell, so the writer's open() finds it. (A writer that replaced
  // the FIFO instead leaves the reader waiting on the old one: it is killed then.)
  CliResult r = run(kNetRun + " --json > " + path("expected.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string fifo = path("fifo");
  const std::string cmd = "cat " + fifo + " > " + path("got.json") + " & c=$!; " + binary() + " " + kNetRun +
                          " --out " + fifo + "; s=$?; [ -p " + fifo + " ] || kill $c; wait $c; exit $s";
  const int st = std::system(("sh -c '" + cmd + "'").c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  struct stat sb {};
  ASSERT_EQ(::lstat(path("fifo").c_str(), &sb), 0);
  EXPECT_TRUE(S_ISFIFO(sb.st_mode));
  EXPECT_FALSE(slurp(path("got.json")).empty());
  EXPECT_EQ(slurp(path("got.json")), slurp(path("expected.json")));
  EXPECT_EQ(names(), (std::vector<std::string>{"expected.json", "fifo", "got.json"}));
}

TEST_F(OutputFiles, SymlinkToRegularFileUpdatesTheTargetAndKeepsTheLink) {
  std::ofstream(path("target.json")) << "old";
  fs::permissions(path("target.json"), fs::perms(0640));
  fs::create_symlink("target.json", path("link.json"));
  CliResult r = run(kNetRun + " --out " + path("link.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_symlink(path("link.json")));
  EXPECT_NE(slurp(path("target.json")).find("\"config\""), std::string::npos);
  EXPECT_EQ(fs::status(path("target.json")).permissions() & fs::perms::all, fs::perms(0640));
  // A dangling link creates its target.
  fs::create_symlink("new.json", path("dangling.json"));
  r = run(kNetRun + " --out " + path("dangling.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::is_symlink(path("dangling.json")));
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(path("new.json"))));
  EXPECT_EQ(names(), (std::vector<std::string>{"dangling.json", "link.json", "new.json", "target.json"}));
}

TEST_F(OutputFiles, DirectoryIsRefusedByName) {
  fs::create_directories(path("adir"));
  CliResult r = run(kNetRun + " --out " + path("adir"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("'" + path("adir") + "': it is a directory"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_directory(path("adir")));
  EXPECT_TRUE(fs::is_empty(path("adir")));
}

TEST_F(OutputFiles, StandardOutputToAFullDeviceIsAnError) {
  CliResult r = run_shell(binary() + " net topo --topology fat_tree --k 4 --json 2>&1 >/dev/full");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("lookahead: error: cannot write standard output: No space left on device"), std::string::npos)
      << r.output;
}

// Starts the binary in the background; stdout and stderr to /dev/null.
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> all{binary()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits until `p` exists or the process exits; true if it appeared while the process ran.
bool appears_while_running(pid_t pid, const fs::path& p) {
  for (;;) {
    if (fs::exists(p)) return true;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// The child is killed by `sig` in the middle of writing `temp_inside`; nothing may remain.
void interrupt_and_check(const std::vector<std::string>& args, const fs::path& temp_inside, int sig,
                         const fs::path& dir) {
  const pid_t pid = spawn(args);
  ASSERT_GT(pid, 0);
  const std::string pid_text = std::to_string(pid);
  std::string inside = temp_inside.string();
  inside.replace(inside.find("PID"), 3, pid_text);
  if (const size_t again = inside.find("PID"); again != std::string::npos) inside.replace(again, 3, pid_text);
  ASSERT_TRUE(appears_while_running(pid, inside)) << "finished before it could be interrupted: " << inside;
  ::kill(pid, sig);
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == sig) << "status " << st;
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST_F(OutputFiles, SigtermDuringConvertLeavesNoTemporary) {
  if (!fs::exists(kModel)) GTEST_SKIP() << "run scripts/setup to download " << kModel;
  interrupt_and_check({"moe", "convert", "--quiet", "--type", "f32", "--model", kModel, "--out", path("m.gguf")},
                      path("m.gguf.tmp.PID"), SIGTERM, dir_);
}

TEST_F(OutputFiles, SigintDuringSynthLeavesNoTemporaryDirectory) {
  interrupt_and_check({"moe", "synth", "--shape", "smollm2-135m", "--experts", "4", "--dtype", "f32", "--out",
                       path("syn")},
                      path("syn.tmp.PID/model.safetensors.tmp.PID"), SIGINT, dir_);
}

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return pid;
}

TEST_F(OutputFiles, StaleTemporariesOfDeadProcessesAreSwept) {
  const std::string dead = std::to_string(dead_pid());
  std::ofstream(path("r.json.tmp." + dead)) << "stale";
  std::ofstream(path("r.json.tmp.1")) << "pid 1 is alive: not ours to remove";
  std::ofstream(path("r.json.tmp.x" + dead)) << "not of the form";
  fs::create_directories(path("syn.tmp." + dead) + "/sub");
  std::ofstream(path("syn.tmp." + dead) + "/sub/model.safetensors") << "stale";
  CliResult r = run(kNetRun + " --out " + path("r.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run("moe synth --shape tiny --experts 2 --layers 1 --out " + path("syn"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(names(), (std::vector<std::string>{"r.json", "r.json.tmp.1", "r.json.tmp.x" + dead, "syn"}));
}

}  // namespace
