#pragma once
// Plots of the packet-level reproduction (`lookahead net repro`): SVG, written by our own code so
// the build and the demo need no plotting package.
//
// Contract:
// - write_repro_plots(csv, dir) reads net-repro.csv text (the columns net repro writes; at least
//   fabric, algo, size_bytes, scheme, finished, cct_us, ratio_to_spray) and writes one grouped bar
//   chart per fabric, <dir>/net-repro-<fabric>.svg: groups = (algorithm, size) in CSV order, one bar per
//   scheme = CCT relative to spray (the paper's comparison), a line at 1.0, DNF bars marked. Ratios
//   above the axis cap (4x) are drawn at the cap with their value. Returns the paths written.
// - Throws lookahead::Error on a CSV without those columns; files are written atomically.
#include <string>
#include <vector>

namespace lookahead::net::analysis {

std::vector<std::string> write_repro_plots(const std::string& csv, const std::string& dir);

}  // namespace lookahead::net::analysis
