// SVG bar charts of net repro results (contract in plot.h).
#include "net/analysis/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <tuple>

#include "common/atomic_file.h"
#include "common/error.h"

namespace lookahead::net::analysis {

namespace {

struct Row {
  std::string fabric, failed, algo, scheme;
  uint64_t size = 0;
  bool finished = false;
  double cct_us = 0, ratio = 0;
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

std::vector<Row> parse_rows(const std::string& csv) {
  std::stringstream in(csv);
  std::string line;
  if (!std::getline(in, line)) fail("net repro plot: empty CSV");
  auto header = split_csv_line(line);
  auto column = [&](const char* name) {
    auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail("net repro plot: CSV has no column '{}'", name);
    return static_cast<size_t>(it - header.begin());
  };
  const size_t fabric = column("fabric"), failed = column("failed"), algo = column("algo"), size = column("size_bytes"),
               scheme = column("scheme"), finished = column("finished"), cct = column("cct_us"), ratio = column("ratio_to_spray");
  std::vector<Row> rows;
  int line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto cells = split_csv_line(line);
    if (cells.size() != header.size()) fail("net repro plot: CSV line {} has {} cells, expected {}", line_no, cells.size(), header.size());
    Row r;
    r.fabric = cells[fabric];
    r.failed = cells[failed];
    r.algo = cells[algo];
    r.scheme = cells[scheme];
    try {
      r.size = std::stoull(cells[size]);
      r.finished = cells[finished] == "1";
      r.cct_us = std::stod(cells[cct]);
      r.ratio = std::stod(cells[ratio]);
    } catch (const std::exception&) {
      fail("net repro plot: CSV line {}: bad number", line_no);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string size_label(uint64_t bytes) {
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{}MiB", bytes >> 20);
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{}KiB", bytes >> 10);
  return fmt::format("{}B", bytes);
}

// Colour-blind-safe palette (Okabe-Ito), then greys.
const char* colour(size_t i) {
  static const char* palette[] = {"#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#999999", "#F0E442"};
  return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string chart(const std::string& fabric, const std::vector<Row>& rows) {
  std::vector<std::string> schemes;
  std::vector<std::pair<std::string, uint64_t>> groups;
  std::string failed;
  for (const Row& r : rows) {
    if (std::find(schemes.begin(), schemes.end(), r.scheme) == schemes.end()) schemes.push_back(r.scheme);
    auto g = std::make_pair(r.algo, r.size);
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
    if (!r.failed.empty()) failed = r.failed;
  }
  std::map<std::tuple<std::string, uint64_t, std::string>, const Row*> at;
  for (const Row& r : rows) at[{r.algo, r.size, r.scheme}] = &r;
  // The axis shows ratios up to 4x, fewer if no bar needs them (half-unit steps, at least 1.5).
  double top = 0;
  for (const Row& r : rows)
    if (r.finished) top = std::max(top, r.ratio);
  const double kCap = std::clamp(std::ceil(top * 2) / 2, 1.5, 4.0);
  constexpr double kBar = 14, kGap = 22, kLeft = 60, kTop = 50, kHeight = 260, kBottom = 70;
  const double group_w = static_cast<double>(schemes.size()) * kBar + kGap;
  const double width = kLeft + static_cast<double>(groups.size()) * group_w + 20 + 140;
  const double height = kTop + kHeight + kBottom;
  auto y_of = [&](double ratio) { return kTop + kHeight * (1.0 - std::min(ratio, kCap) / kCap); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height);
  svg += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\">All-reduce completion time relative to spray: {}{}</text>\n", kLeft,
                     escape(fabric), failed.empty() ? "" : " (failed cable " + escape(failed) + ")");
  svg += fmt::format("<text x=\"{}\" y=\"36\" fill=\"#555\">lower is better; 1.0 = oblivious packet spraying; DNF = did not finish</text>\n",
                     kLeft);
  // Axis and grid.
  for (double t = 0; t <= kCap + 1e-9; t += 0.5) {
    double y = y_of(t);
    svg += fmt::format("<line x1=\"{}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>\n", kLeft, width - 160, y, y,
                       t == 1.0 ? "#000" : "#ddd");
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n", kLeft - 6, y + 4, t);
  }
  svg += fmt::format("<text x=\"14\" y=\"{:.0f}\" transform=\"rotate(-90 14 {:.0f})\" text-anchor=\"middle\">CCT / spray CCT</text>\n",
                     kTop + kHeight / 2, kTop + kHeight / 2);
  for (size_t g = 0; g < groups.size(); ++g) {
    double x0 = kLeft + 10 + static_cast<double>(g) * group_w;
    for (size_t s = 0; s < schemes.size(); ++s) {
      auto it = at.find({groups[g].first, groups[g].second, schemes[s]});
      if (it == at.end()) continue;
      const Row& r = *it->second;
      double x = x0 + static_cast<double>(s) * kBar;
      if (!r.finished || r.ratio <= 0) {
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"none\" stroke=\"{}\" stroke-dasharray=\"3,2\"/>\n",
                           x + 1, y_of(kCap), kBar - 2, kHeight, colour(s));
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\" transform=\"rotate(-90 {:.1f} {:.1f})\">DNF</text>\n", x + kBar / 2 + 3,
                           kTop + 30, x + kBar / 2 + 3, kTop + 30);
        continue;
      }
      double y = y_of(r.ratio);
      svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"{}\"><title>{} {} {}: {:.0f} us ({:.2f}x spray)</title></rect>\n",
                         x + 1, y, kBar - 2, kTop + kHeight - y, colour(s), escape(schemes[s]), escape(groups[g].first),
                         size_label(groups[g].second), r.cct_us, r.ratio);
      if (r.ratio > kCap) svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\">{:.1f}</text>\n", x, y - 3, r.ratio);
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x0 + schemes.size() * kBar / 2,
                       kTop + kHeight + 16, escape(groups[g].first));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n", x0 + schemes.size() * kBar / 2,
                       kTop + kHeight + 30, size_label(groups[g].second));
  }
  // Legend.
  double lx = width - 140;
  for (size_t s = 0; s < schemes.size(); ++s) {
    double ly = kTop + 10 + static_cast<double>(s) * 18;
    svg += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{:.0f}\" y=\"{:.0f}\">{}</text>\n", lx,
                       ly, colour(s), lx + 18, ly + 10, escape(schemes[s]));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace

std::vector<std::string> write_repro_plots(const std::string& csv, const std::string& dir) {
  auto rows = parse_rows(csv);
  std::vector<std::string> fabrics;
  for (const Row& r : rows)
    if (std::find(fabrics.begin(), fabrics.end(), r.fabric) == fabrics.end()) fabrics.push_back(r.fabric);
  std::vector<std::string> written;
  for (const auto& fabric : fabrics) {
    std::vector<Row> mine;
    for (const Row& r : rows)
      if (r.fabric == fabric) mine.push_back(r);
    std::string path = dir + "/net-repro-" + fabric + ".svg";
    write_file_atomic(path, chart(fabric, mine));
    written.push_back(path);
  }
  return written;
}

}  // namespace lookahead::net::analysis
