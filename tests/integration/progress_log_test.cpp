// Progress in logs (issue 15 item 10): with stderr a file (not a terminal), long commands write plain
// progress lines there — a start and an end line per stage — while stdout stays the result alone.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Split {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

class ProgressLogCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lookahead_progress_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs the binary with stdout and stderr each redirected to a file.
  Split run(const std::string& args) {
    const auto out = dir_ / "stdout", err = dir_ / "stderr";
    const std::string cmd = std::string(LOOKAHEAD_BINARY) + " " + args + " >" + out.string() + " 2>" + err.string();
    const int st = std::system(cmd.c_str());
    Split r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }
  std::filesystem::path dir_;
};

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

TEST_F(ProgressLogCli, PerplexityWritesStageLinesToANonTerminalStderr) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing (run scripts/setup)";
  {
    std::ofstream text(dir_ / "text.txt");
    for (int i = 0; i < 40; ++i) text << "The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n";
  }
  const Split r = run("moe perplexity --model " + kModel + " --file " + (dir_ / "text.txt").string() + " --ctx 32 --chunks 3 -t 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "perplexity: started (3)\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "perplexity: done 3/3 in ")) << r.err;
  EXPECT_FALSE(contains(r.err, "\r")) << "no terminal bar in a log";
  EXPECT_TRUE(contains(r.err, "\n[1]")) << "the per-chunk list on a line of its own: " << r.err;
  EXPECT_FALSE(contains(r.out, "perplexity: started")) << "progress stays off stdout";
  EXPECT_TRUE(contains(r.out, "PPL")) << r.out;
}

TEST_F(ProgressLogCli, BenchWritesStageLinesToANonTerminalStderr) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing (run scripts/setup)";
  const Split r = run("moe bench --model " + kModel + " -p 8 -n 4 -r 1 -t 1");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "bench pp8 (runs): started (2)\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "bench pp8 (runs): done 2/2 in ")) << r.err;
  EXPECT_TRUE(contains(r.err, "bench tg4 (tokens): started (8)\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "bench tg4 (tokens): done 8/8 in ")) << r.err;
  EXPECT_TRUE(contains(r.out, "| tg4 |")) << r.out;
  EXPECT_FALSE(contains(r.out, "started")) << r.out;
}

}  // namespace
