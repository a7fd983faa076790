#pragma once
// Runs the `lookahead` binary under test (LOOKAHEAD_BINARY, set by tests/CMakeLists.txt) with a
// shell argument string and captures its exit status and combined stdout + stderr, for the
// integration tests that drive whole commands. LOOKAHEAD_TEST_BINARY, when set, names another
// binary to run the same tests against (e.g. one built before a fix, to see a test fail).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lookahead::test {

struct CliRun {
  int status = -1;     // exit status; -1 when the command could not run or was killed
  std::string output;  // stdout + stderr
};

inline std::string test_binary() {
  const char* b = std::getenv("LOOKAHEAD_TEST_BINARY");
  return b && *b ? b : LOOKAHEAD_BINARY;
}

// Runs a shell command line; captures what it writes to stdout (add 2>&1 for stderr).
inline CliRun run_shell(const std::string& cmd) {
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline CliRun run_cli(const std::string& args) { return run_shell(test_binary() + " " + args + " 2>&1"); }

}  // namespace lookahead::test
