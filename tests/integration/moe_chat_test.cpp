// `moe chat` through pipes (issue 15 item 11): a banner naming the model and how to quit; Ctrl-C
// (SIGINT) stops the reply, not the session, and twice at the prompt quits; a full context drops the
// oldest turns instead of exiting. Deadlines below only guard against a hang; nothing is timed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace {

const std::string kModel = std::string(LOOKAHEAD_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr auto kDeadline = std::chrono::seconds(30);

// `lookahead moe chat ARGS` with stdin, stdout and stderr on pipes.
class Chat {
 public:
  explicit Chat(const std::vector<std::string>& args) {
    int in[2], out[2], err[2];
    if (pipe(in) != 0 || pipe(out) != 0 || pipe(err) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0), dup2(out[1], 1), dup2(err[1], 2);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      std::vector<std::string> all = {LOOKAHEAD_BINARY, "moe", "chat", "--model", kModel, "-t", "1"};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]), close(out[1]), close(err[1]);
    in_ = in[1], out_ = out[0], err_ = err[0];
    signal(SIGPIPE, SIG_IGN);
  }
  ~Chat() {
    close_stdin();
    if (pid_ > 0 && status_ == -2) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int fd : {out_, err_})
      if (fd >= 0) close(fd);
  }
  void send(const std::string& text) { ASSERT_EQ(write(in_, text.data(), text.size()), static_cast<ssize_t>(text.size())); }
  void close_stdin() {
    if (in_ >= 0) close(in_), in_ = -1;
  }
  void interrupt() { kill(pid_, SIGINT); }
  // Reads stdout and stderr until `done()` holds or both reach end of file; false on the deadline.
  bool pump_until(const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + kDeadline;
    while (!done()) {
      if (out_ < 0 && err_ < 0) return done();
      if (std::chrono::steady_clock::now() > end) return false;
      std::vector<pollfd> fds;
      for (int fd : {out_, err_})
        if (fd >= 0) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 200) <= 0) continue;
      for (auto& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[4096];
        const ssize_t n = read(p.fd, buf, sizeof buf);
        int& fd = p.fd == out_ ? out_ : err_;
        std::string& into = p.fd == out_ ? stdout_ : stderr_;
        if (n <= 0) close(fd), fd = -1;
        else into.append(buf, static_cast<size_t>(n));
      }
    }
    return true;
  }
  bool stderr_has(const std::string& s) { return pump_until([&] { return stderr_.find(s) != std::string::npos; }); }
  // Reads everything, then waits: the exit status, or -1 when killed by a signal.
  int wait_exit() {
    close_stdin();
    pump_until([] { return false; });
    int st = 0;
    waitpid(pid_, &st, 0);
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return status_;
  }
  const std::string& out() const { return stdout_; }
  const std::string& err() const { return stderr_; }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  int status_ = -2;
  std::string stdout_, stderr_;
};

#define REQUIRE_MODEL() \
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " missing (run scripts/setup)"

TEST(MoeChat, BannerNamesTheModelAndHowToQuit) {
  REQUIRE_MODEL();
  Chat chat({});
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
  EXPECT_NE(chat.err().find("SmolLM2-135M-Instruct.Q4_1.gguf"), std::string::npos) << chat.err();
  EXPECT_NE(chat.err().find("Ctrl-D"), std::string::npos) << chat.err();
  EXPECT_NE(chat.err().find("Ctrl-C stops a reply"), std::string::npos) << chat.err();
  EXPECT_EQ(chat.out(), "") << "the banner stays off stdout";
}

TEST(MoeChat, CtrlCStopsTheReplyNotTheSession) {
  REQUIRE_MODEL();
  Chat chat({"--temp", "0", "--tokens", "120", "--ctx", "1024"});
  // A reply that runs to --tokens (120 tokens at temperature 0), interrupted at its first bytes.
  chat.send("Write a very long story about a dragon and a knight, with many chapters.\n");
  ASSERT_TRUE(chat.pump_until([&] { return !chat.out().empty(); })) << chat.err();
  chat.interrupt();
  ASSERT_TRUE(chat.stderr_has("reply stopped (Ctrl-C)")) << chat.err();
  const size_t before = chat.out().size();
  chat.send("Say yes.\n");
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
  EXPECT_GT(chat.out().size(), before + 1) << "the session answered after the Ctrl-C: " << chat.out();
  EXPECT_LT(before, 1000u) << "the first reply was cut short: " << chat.out();
}

TEST(MoeChat, CtrlCTwiceAtThePromptQuits) {
  REQUIRE_MODEL();
  Chat chat({});
  ASSERT_TRUE(chat.stderr_has("Ctrl-D")) << chat.err();  // the banner: at the prompt, the handler installed
  chat.interrupt();
  ASSERT_TRUE(chat.stderr_has("(Ctrl-C again or Ctrl-D to quit)")) << chat.err();
  chat.interrupt();
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
}

TEST(MoeChat, AFullContextDropsTheOldestTurns) {
  REQUIRE_MODEL();
  Chat chat({"--temp", "0", "--tokens", "24", "--ctx", "128"});
  for (const char* m : {"What is the capital of France?", "And of Italy?", "And of Spain?", "And of Germany?",
                        "And of Portugal?", "And of Austria?"})
    chat.send(std::string(m) + "\n");
  EXPECT_EQ(chat.wait_exit(), 0) << chat.err();
  EXPECT_NE(chat.err().find("context of 128 tokens is full: dropped the oldest"), std::string::npos) << chat.err();
  EXPECT_EQ(chat.err().find("error"), std::string::npos) << chat.err();
}

// On a terminal: the prompt "> ", and Ctrl-D on it ends the session on a new line (the shell's
// prompt must not follow "> " on the same line).
TEST(MoeChat, CtrlDOnATerminalEndsWithANewline) {
  REQUIRE_MODEL();
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(LOOKAHEAD_BINARY, LOOKAHEAD_BINARY, "moe", "chat", "--model", kModel.c_str(), "-t", "1", nullptr);
    _exit(127);
  }
  std::string seen;
  auto read_until = [&](const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + kDeadline;
    while (!done() && std::chrono::steady_clock::now() < end) {
      pollfd p{master, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) return;  // EIO: the child closed the terminal
      seen.append(buf, static_cast<size_t>(n));
    }
  };
  read_until([&] { return seen.find("> ") != std::string::npos; });
  ASSERT_NE(seen.find("> "), std::string::npos) << seen;
  ASSERT_EQ(write(master, "\x04", 1), 1);  // Ctrl-D on an empty line: end of input
  read_until([] { return false; });
  int st = 0;
  waitpid(pid, &st, 0);
  close(master);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << seen;
  const std::string after = seen.substr(seen.rfind("> ") + 2);
  EXPECT_NE(after.find('\n'), std::string::npos) << "no newline after the prompt: " << seen;
}

}  // namespace
