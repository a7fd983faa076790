#pragma once
// How a `lookahead <group> <command>` is added: one file in cli/ per command, which registers
// itself at static-initialisation time (cli/ is linked into the binary directly, so nothing is
// dropped by the linker). Example:
//
//   static const bool registered = lookahead::cli::register_command(
//       {"net", "topo", "Print a topology summary", [](CLI::App& cmd) {
//          auto opts = std::make_shared<TopoOptions>();
//          cmd.add_option("--spines", opts->spines, "number of spine switches");
//          cmd.callback([opts] { run_topo(*opts); });
//        }});
//
// The callback reports bad input by throwing lookahead::Error; main() prints it and exits 1.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace lookahead::cli {

struct Command {
  std::string group;    // "moe" or "net"
  std::string name;     // e.g. "generate"
  std::string summary;  // one line for --help
  std::function<void(CLI::App&)> define;  // adds options and the callback to the subcommand
};

bool register_command(Command command);

}  // namespace lookahead::cli
