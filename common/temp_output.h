#pragma once
// Temporary output names ("<out>.tmp.<pid>", the names AtomicFile and StagingDir write under) and
// their cleanup when the process dies.
//
// Contract:
//   - temp_output_path(out) is "<out>.tmp.<pid>" for this process.
//   - TempOutputGuard registers a temporary file or directory for removal if the process is killed
//     by SIGINT, SIGTERM or SIGHUP while it exists (the handler removes it, then the signal takes
//     its default action, so the exit status still says "killed by signal"). A signal whose
//     disposition is not the default when the first guard is made (ignored, or a command's own
//     handler, as `moe serve` installs) is left alone. At most kMaxTempOutputs guards are active at
//     once; further ones still work but are not cleaned on signals (the sweep catches them).
//   - sweep_stale_temp_outputs(out) removes "<out>.tmp.<N>" files and directories beside `out`
//     whose process N no longer exists (left by a SIGKILL, a crash, or an older lookahead);
//     names of live processes, and anything not of that exact form, are left alone.
#include <string>

namespace lookahead {

inline constexpr int kMaxTempOutputs = 32;

std::string temp_output_path(const std::string& out);

void sweep_stale_temp_outputs(const std::string& out);

class TempOutputGuard {
 public:
  TempOutputGuard() = default;
  explicit TempOutputGuard(const std::string& path) { watch(path); }
  ~TempOutputGuard() { release(); }
  TempOutputGuard(const TempOutputGuard&) = delete;
  TempOutputGuard& operator=(const TempOutputGuard&) = delete;

  // Starts guarding `path` (a file or a directory), after release() of any earlier one.
  void watch(const std::string& path);
  // Stops guarding (the temporary was renamed into place or removed).
  void release();

 private:
  int slot_ = -1;
};

}  // namespace lookahead
