#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/stats.h"

namespace lookahead {

TEST(Percentile, InterpolatesLikeNumpy) {
  std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_DOUBLE_EQ(percentile(v, 95), 3.85);
  EXPECT_TRUE(std::isnan(percentile({}, 50)));
}

TEST(AtomicFile, CommitReplacesAndAbandonLeavesOriginal) {
  auto dir = std::filesystem::temp_directory_path() / ("lookahead_atomic_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "out.txt").string();
  write_file_atomic(path, "first");
  {
    AtomicFile file(path);
    file.write("half-written");
    // destroyed without commit: as if an error was thrown mid-write
  }
  std::ifstream in(path);
  std::string contents((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(contents, "first");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
  std::filesystem::remove_all(dir);
}

TEST(AtomicFile, UnwritableDirectoryIsAClearError) {
  try {
    AtomicFile file("/nonexistent-dir/x.bin");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.bin"), std::string::npos);
  }
}

}  // namespace lookahead
