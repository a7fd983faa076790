// The `lookahead` binary: git-style command groups `lookahead moe ...` and `lookahead net ...`.
// Commands live in cli/<group>_<command>.cpp and register themselves (cli/command.h).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <vector>

#include "cli/command.h"
#include "common/error.h"

namespace lookahead::cli {

static std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

bool register_command(Command command) {
  registry().push_back(std::move(command));
  return true;
}

// The engine's kernels run on their own pool (moe/kernels/thread_pool.h), which decides per forward
// pass whether to spin; OpenMP remains in the offline tools (reconstruction, conversion).
// OpenMP's idle workers spin for GOMP_SPINCOUNT iterations (libgomp's default, 300000: milliseconds)
// before they sleep. On a machine shared with any other load a spinning worker holds a core the
// thread with the work needs, and decode collapsed (SmolLM2 tg: 72 -> 7-19 tokens/s beside one
// `yes`). 1000 spins (libgomp's own value once it knows threads outnumber cores) keep the quiet
// speed and do not collapse: docs/results/engine-threads.md. libgomp reads its environment when
// it is loaded, before main() (and glibc resets the environment after DT_PREINIT_ARRAY functions
// run), so the binary sets GOMP_SPINCOUNT and re-executes itself once. OMP_WAIT_POLICY or
// GOMP_SPINCOUNT from the user win; LOOKAHEAD_NO_REEXEC=1 turns this off.
static void default_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("LOOKAHEAD_NO_REEXEC")) return;
  if (setenv("GOMP_SPINCOUNT", "1000", 0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on with libgomp's default
}

}  // namespace lookahead::cli

namespace {

using Groups = std::map<std::string, CLI::App*>;

// The command groups and every registered command under its group. Returns false (after saying so)
// if a command names an unknown group.
bool add_commands(CLI::App& app, Groups& groups) {
  const std::map<std::string, std::string> group_summaries = {
      {"moe", "Read-ME: run dense Llama-family models, refactor them into router-decoupled MoE, and serve them"},
      {"net", "Packet-level AI-fabric simulation: singlepath flow splitting (Ethereal) vs packet spraying"},
      {"bridge", "Expert-parallel MoE all-to-all from pre-gated routing, planned and simulated on the fabric"},
  };
  for (const auto& [name, summary] : group_summaries) {
    CLI::App* group = app.add_subcommand(name, summary);
    group->require_subcommand(1);
    groups[name] = group;
  }
  auto& commands = lookahead::cli::registry();
  std::sort(commands.begin(), commands.end(),
            [](const auto& a, const auto& b) { return std::tie(a.group, a.name) < std::tie(b.group, b.name); });
  for (const auto& command : commands) {
    auto it = groups.find(command.group);
    if (it == groups.end()) {
      std::fprintf(stderr, "lookahead: internal error: command '%s' registered in unknown group '%s'\n",
                   command.name.c_str(), command.group.c_str());
      return false;
    }
    CLI::App* sub = it->second->add_subcommand(command.name, command.summary);
    sub->option_defaults()->always_capture_default();  // --help shows every option's default
    command.define(*sub);
    // Where the description states the default itself (a 0 or -1 member meaning "the spec's" or
    // "derived"), the captured sentinel would contradict it.
    for (CLI::Option* opt : sub->get_options())
      if (opt->get_description().find("default") != std::string::npos) opt->default_str("");
  }
  return true;
}

// CLI11 reports a mistyped command as "A subcommand is required"; name it instead. Returns false
// (after saying so) for an unknown group or command.
bool known_command(int argc, char** argv, const Groups& groups) {
  if (argc >= 2 && argv[1][0] != '-' && !groups.count(argv[1])) {
    std::fprintf(stderr, "lookahead: error: unknown command group '%s' (expected 'moe', 'net' or 'bridge'; see lookahead --help)\n", argv[1]);
    return false;
  }
  if (argc >= 3 && argv[2][0] != '-' && groups.count(argv[1])) {
    CLI::App* group = groups.at(argv[1]);
    bool known = false;
    for (const auto* sub : group->get_subcommands([](CLI::App*) { return true; })) known |= sub->get_name() == argv[2];
    if (!known) {
      std::fprintf(stderr, "lookahead: error: unknown command '%s %s' (see lookahead %s --help)\n", argv[1], argv[2], argv[1]);
      return false;
    }
  }
  return true;
}

int error_exit(const char* message) {
  std::fflush(stdout);
  std::fprintf(stderr, "lookahead: error: %s\n", message);
  return 1;
}

constexpr int kRan = -1;  // parse_and_run: the command ran (its output still to be flushed)

// Parses and runs the command; every error becomes one line on stderr and exit status 1. Returns the
// exit status of help, version and errors, else kRan.
int parse_and_run(CLI::App& app, int argc, char** argv, const Groups& groups) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Unknown flags, bad values, missing required flags: one line in the same form and with the
    // same exit status as every other error, pointing at the command's help.
    std::string message = e.what(), where = "lookahead";
    for (char& c : message)
      if (c == '\n') c = ' ';
    if (argc >= 2 && groups.count(argv[1])) {
      where += std::string(" ") + argv[1];
      if (argc >= 3 && argv[2][0] != '-') where += std::string(" ") + argv[2];
    }
    return error_exit(fmt::format("{} (see {} --help)", message, where).c_str());
  } catch (const lookahead::Error& e) {
    return error_exit(e.what());
  } catch (const std::bad_alloc&) {
    return error_exit("out of memory");
  } catch (const std::exception& e) {
    return error_exit(e.what());
  }
  return kRan;
}

}  // namespace

int main(int argc, char** argv) {
  lookahead::cli::default_openmp_spin(argv);
  CLI::App app{"lookahead: Read-ME mixture-of-experts serving (moe) and singlepath-vs-spraying network simulation (net)",
               "lookahead"};
  app.set_version_flag("--version", "lookahead " LOOKAHEAD_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  Groups groups;
  if (!add_commands(app, groups)) return 2;
  if (!known_command(argc, argv, groups)) return 1;
  if (int status = parse_and_run(app, argc, argv, groups); status != kRan) return status;
  // Results printed to a full disk or a closed pipe are an error, not a silent success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "lookahead: error: cannot write standard output: %s\n", std::strerror(errno));
    return 1;
  }
  return 0;
}
