// CLI defaults and flag validation through the real binary (issue 15 items 3, 6, 7, 9, 15).
// LOOKAHEAD_TEST_BINARY (environment) runs these against another build, e.g. an older one.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

namespace fs = std::filesystem;

std::string binary() {
  const char* b = std::getenv("LOOKAHEAD_TEST_BINARY");
  return b && *b ? b : LOOKAHEAD_BINARY;
}

struct CliResult {
  int status = -1;
  std::string output;  // stdout + stderr
};

CliResult run_shell(const std::string& line) {
  CliResult r;
  FILE* p = ::popen(line.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// `env` is prepended to the command (VAR=value ...).
CliResult run(const std::string& args, const std::string& env = "") {
  return run_shell(env + (env.empty() ? "" : " ") + binary() + " " + args + " 2>&1");
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

// Item 3: libgomp's 300000-spin default collapsed decode beside any other load; the binary runs
// with 1000 spins unless the user chose a wait policy or spin count.
TEST(CliDefaults, OpenMpSpinIsShortByDefaultAndTheUsersSettingWins) {
  // Unset the user's variables so the default applies (then the report of the final image counts).
  CliResult r = run("--version", "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
  r = run("--version", "env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=7 OMP_DISPLAY_ENV=verbose");
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '7'")) << r.output;
  EXPECT_FALSE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
  r = run("--version", "env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive OMP_DISPLAY_ENV=verbose");
  EXPECT_TRUE(contains(r.output, "GOMP_SPINCOUNT = '0'")) << r.output;
  EXPECT_FALSE(contains(r.output, "GOMP_SPINCOUNT = '1000'")) << r.output;
}

}  // namespace
