// net repro plots: one SVG per fabric from the CSV, bars per scheme, DNF marked, bad CSV an error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "net/analysis/plot.h"
#include "tests/scratch_path.h"

using namespace lookahead::net;

TEST(AnalysisPlot, OneSvgPerFabricWithEveryScheme) {
  std::string csv =
      "fabric,failed,algo,size_bytes,scheme,finished,cct_us,ratio_to_spray,qps\n"
      "leaf_spine,,hd,1048576,spray,1,88.0,1.0000,64\n"
      "leaf_spine,,hd,1048576,ethereal,1,67.0,0.7614,512\n"
      "leaf_spine,,hd,1048576,ecmp,1,500.0,5.6818,64\n"
      "leaf_spine_fail,leaf0-spine0,hd,1048576,spray,1,1088.0,1.0000,64\n"
      "leaf_spine_fail,leaf0-spine0,hd,1048576,ecmp,0,0.000,0.0000,64\n";
  auto dir = lookahead::test::scratch_path("lookahead_plot_test");
  std::filesystem::create_directories(dir);
  auto written = analysis::write_repro_plots(csv, dir.string());
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0], (dir / "net-repro-leaf_spine.svg").string());
  std::ifstream in(written[0]);
  std::stringstream svg;
  svg << in.rdbuf();
  EXPECT_NE(svg.str().find("<svg"), std::string::npos);
  for (const char* s : {"spray", "ethereal", "ecmp", "1MiB", "5.7"}) EXPECT_NE(svg.str().find(s), std::string::npos) << s;
  std::ifstream fail_in(written[1]);
  std::stringstream fail_svg;
  fail_svg << fail_in.rdbuf();
  EXPECT_NE(fail_svg.str().find("DNF"), std::string::npos);
  EXPECT_NE(fail_svg.str().find("failed cable leaf0-spine0"), std::string::npos);
  EXPECT_THROW(analysis::write_repro_plots("fabric,algo\nx,y\n", dir.string()), lookahead::Error);
  std::filesystem::remove_all(dir);
}
