#include "tests/integration/support/api_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace microvm::testing {

ApiVm::ApiVm(std::vector<std::string> extra, std::vector<std::string> wrapper) {
  socket_ = dir_.path() + "/api.sock";
  std::vector<std::string> args = std::move(wrapper);
  args.insert(args.end(), {microvm_binary(), "run", "--api-sock", socket_});
  args.insert(args.end(), extra.begin(), extra.end());
  std::string out = dir_.path() + "/out", err = dir_.path() + "/err";
  pid_ = ::fork();
  if (pid_ == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  for (int i = 0; i < 1000 && !ready_; ++i) {
    struct stat st {};
    if (::stat(socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
      ready_ = true;
    else if (wait_exit(0))
      break;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ApiVm::~ApiVm() {
  if (pid_ > 0 && !exit_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

pid_t ApiVm::vmm_pid() const {
  std::string p = std::to_string(pid_);
  std::string children = read_text_file("/proc/" + p + "/task/" + p + "/children");
  size_t at = 0;
  while (at < children.size()) {
    size_t end = children.find(' ', at);
    std::string c = children.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? children.size() : end + 1;
    if (!c.empty() && shell_line("cat /proc/" + c + "/comm") == "microvm") return std::atoi(c.c_str());
  }
  return pid_;
}

bool ApiVm::wait_for_output(const std::string& text, int seconds) const {
  for (int i = 0; i < seconds * 10; ++i) {
    if (out().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::optional<int> ApiVm::wait_exit(int seconds) {
  if (exit_ || pid_ <= 0) return exit_;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

CurlReply ApiVm::curl(const std::string& method, const std::string& path, const std::string& body) const {
  static int counter = 0;
  std::string n = std::to_string(++counter);
  std::string body_file = dir_.write_file("req" + n, body);
  std::string reply_file = dir_.path() + "/reply" + n;
  // --max-time only bounds a hung test; no assertion depends on how fast the answer is.
  std::string cmd = "curl -s --max-time 30 --unix-socket '" + socket_ + "' -X " + method + " -o '" + reply_file +
                    "' -w '%{http_code}' -H 'Content-Type: application/json' ";
  if (!body.empty()) cmd += "--data-binary @'" + body_file + "' ";
  cmd += "'http://localhost" + path + "'";
  CurlReply r;
  std::string code = shell_line(cmd);
  r.status = std::atoi(code.c_str());
  r.body = read_text_file(reply_file);
  return r;
}

std::string fault_message(const std::string& body) {
  const std::string key = "\"fault_message\":\"";
  size_t at = body.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return body.substr(at, body.rfind('"') - at);
}

}  // namespace microvm::testing
