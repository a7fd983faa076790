#include "common/input_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace lookahead {

std::string read_input_file(const std::string& path, std::string_view what) {
  const std::string name = what.empty() ? path : fmt::format("{} {}", what, path);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{}: cannot open: {}", name, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail("{}: is a directory; expected a file", name);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open: {}", name, std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad) fail("{}: read error: {}", name, std::strerror(err));
  return text;
}

}  // namespace lookahead
