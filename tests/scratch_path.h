#pragma once
// A path in the test temp directory that belongs to this test process alone. ctest runs every test
// as its own process and several at once, so two tests writing "<tmp>/name" race: CI once saw one
// test's remove_all delete files another test was still writing. The process id keeps them apart.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace lookahead::test {

inline std::filesystem::path scratch_path(const std::string& name) {
  // The id goes first so a name keeps its extension (tests match on "file.ext:line" in errors).
  return std::filesystem::path(::testing::TempDir()) / (std::to_string(::getpid()) + "_" + name);
}

}  // namespace lookahead::test
