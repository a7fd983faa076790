#include "common/memory_limit.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/error.h"

namespace lookahead {

namespace {

MemoryLimit g_limit;
bool g_resolved = false;
uint64_t g_bytes = 0;
std::mutex g_mutex;

uint64_t read_number(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return 0;
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

uint64_t available_memory_bytes() {
  uint64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream fields(line.substr(13));
      uint64_t kib = 0;
      if (fields >> kib) available = kib * 1024;
      break;
    }
  }
  const uint64_t max = read_number("/sys/fs/cgroup/memory.max");
  if (max > 0) {
    const uint64_t current = read_number("/sys/fs/cgroup/memory.current");
    const uint64_t room = max > current ? max - current : 0;
    if (available == 0 || room < available) available = room;
  }
  return available;
}

MemoryLimit parse_memory_limit(const std::string& text, const std::string& flag) {
  if (text == "auto") return {};
  if (text == "none") return {false, 0};
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  std::string unit = text.substr(used);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.erase(0, 1);
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  else if (unit == "KiB") scale = 1024.0;
  else if (unit == "MiB") scale = 1024.0 * 1024;
  else if (unit == "GiB") scale = 1024.0 * 1024 * 1024;
  else if (unit == "TiB") scale = 1024.0 * 1024 * 1024 * 1024;
  if (used == 0 || scale == 0 || !(value > 0) || !std::isfinite(value * scale) || value * scale >= 1.8e19)
    fail("{}: expected auto, none or a size like 8GiB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got '{}'", flag,
         text);
  return {false, static_cast<uint64_t>(value * scale)};
}

void set_memory_limit(const MemoryLimit& limit) {
  std::lock_guard lock(g_mutex);
  g_limit = limit;
  g_resolved = false;
}

uint64_t memory_limit() {
  std::lock_guard lock(g_mutex);
  if (!g_resolved) {
    g_bytes = g_limit.automatic ? available_memory_bytes() : g_limit.bytes;
    g_resolved = true;
  }
  return g_bytes;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

void require_memory(double estimate_bytes, const std::string& what) {
  const uint64_t limit = memory_limit();
  if (limit == 0 || !(estimate_bytes > static_cast<double>(limit))) return;
  bool automatic;
  {
    std::lock_guard lock(g_mutex);
    automatic = g_limit.automatic;
  }
  fail("{} needs about {} of memory, more than the limit of {} ({}); --memory-limit SIZE|none overrides", what,
       format_bytes(estimate_bytes), format_bytes(static_cast<double>(limit)),
       automatic ? "the memory available now" : "--memory-limit");
}

}  // namespace lookahead
