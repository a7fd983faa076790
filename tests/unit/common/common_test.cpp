#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/staging_dir.h"
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

TEST(StagingDir, ReplaceSwapsInTheNewDirectoryAndRemovesTheOld) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("lookahead_staging_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "out");
  std::ofstream(dir / "out" / "old.txt") << "old";
  const std::string out = (dir / "out").string();
  EXPECT_THROW(StagingDir{out}, Error);  // exists, no replace
  {
    StagingDir staging(out, /*replace=*/true);
    write_file_atomic(staging.file("new.txt"), "new");
    EXPECT_TRUE(fs::exists(dir / "out" / "old.txt"));  // untouched until commit
    staging.commit();
  }
  EXPECT_TRUE(fs::exists(dir / "out" / "new.txt"));
  EXPECT_FALSE(fs::exists(dir / "out" / "old.txt"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), {}), 1);  // no temporary, no old copy
  std::ofstream(dir / "file") << "x";
  EXPECT_THROW(StagingDir((dir / "file").string(), true), Error);  // not a directory: never replaced
  fs::remove_all(dir);
}

}  // namespace lookahead
