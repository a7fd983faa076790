#pragma once
// Reading an input file named on the command line or in a spec, with the errors users need.
//
// Contract: read_input_file returns the whole file. A directory, a missing or unreadable file, or a
// read error throw lookahead::Error "<what> <path>: is a directory; expected a file" (or ": cannot
// open: <reason>", ": read error: <reason>"); `what` is the flag or role ("--file", "trace") and may
// be empty. Devices and pipes are read like files (`--file /dev/stdin`).
#include <string>
#include <string_view>

namespace lookahead {

std::string read_input_file(const std::string& path, std::string_view what);

}  // namespace lookahead
