#pragma once
// Runs the `lookahead` binary under test (LOOKAHEAD_BINARY, set by tests/CMakeLists.txt) with a
// shell argument string and captures its exit status and combined stdout + stderr, for the
// integration tests that drive whole commands.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace lookahead::test {

struct CliRun {
  int status = -1;     // exit status; -1 when the command could not run or was killed
  std::string output;  // stdout + stderr
};

inline CliRun run_cli(const std::string& args) {
  const std::string cmd = std::string(LOOKAHEAD_BINARY) + " " + args + " 2>&1";
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

}  // namespace lookahead::test
