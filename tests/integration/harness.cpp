#include "harness.hpp"

#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sbus_test {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string errno_text() {
  return std::strerror(errno);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// fork + exec of `argv` with the given descriptors as 0, 1 and 2. The child
// gets no other descriptor of ours (the test's own AMQP sockets must not
// outlive their close in a child) and an empty signal mask.
pid_t spawn(const std::vector<std::string>& args, int in_fd, int out_fd, int err_fd) {
  require_own_state_dir(args);
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed: " + errno_text());
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0) {
      _exit(127);
    }
    close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    // A test process that dies (an abort, a crash) takes its sbusd along:
    // an orphan would go on serving and retrying beside the next tests.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to `timeout` for `pid`; its decoded status, or nullopt.
std::optional<int> wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return decode_status(status);
    if (done < 0 && errno != EINTR) throw std::runtime_error("waitpid failed: " + errno_text());
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

std::string amqp_reply_text(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* m = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
        return "channel closed: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
      }
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* m = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        return "connection closed: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
      }
      return "server exception, method " + std::to_string(reply.reply.id);
  }
  return "unknown reply";
}

amqp_bytes_t bytes(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

std::string to_string(amqp_bytes_t b) {
  return std::string(static_cast<const char*>(b.bytes), b.len);
}

}  // namespace

int broker_port() {
  static const int port = [] {
    const std::string path = std::string(SBUS_TEST_BROKER_DIR) + "/port";
    std::ifstream in(path);
    int value = 0;
    if (!(in >> value) || value <= 0 || value > 65535) {
      throw std::runtime_error("no test broker: " + path +
                               " is missing or not a port. The CTest fixture `broker` "
                               "(tests/integration/test_broker start " SBUS_TEST_BROKER_DIR
                               ") writes it; run the tests with `ctest -L integration`.");
    }
    return value;
  }();
  return port;
}

std::string broker_uri() {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(broker_port()) + "/%2f";
}

DeadPort::DeadPort() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("socket failed: " + errno_text());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string error = errno_text();
    ::close(fd_);
    throw std::runtime_error("cannot reserve a port: " + error);
  }
  port_ = ntohs(address.sin_port);
}

DeadPort::~DeadPort() {
  ::close(fd_);
}

std::string DeadPort::uri() const {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_) + "/%2f";
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/sbus-it-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed: " + errno_text());
  path_ = pattern;
}

TempDir::~TempDir() {
  if (std::getenv("SBUS_TEST_KEEP") != nullptr) return;
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::string write_secret(const std::string& dir, std::string_view secret) {
  const std::string path = dir + "/secret";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + errno_text());
  const std::string text = std::string(secret) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  // The umask cannot widen 0600, but a file left by someone else could be wider.
  if (!ok || ::chmod(path.c_str(), 0600) != 0) throw std::runtime_error("cannot write " + path);
  return path;
}

bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::string unique_node() {
  static std::atomic<int> counter{0};
  return "it-" + std::to_string(getpid()) + "-" + std::to_string(++counter);
}

std::string py_token(std::string_view secret, std::string_view date) {
  const std::string input = std::string(secret) + " - " + std::string(date);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char byte : digest) {
    hex += kHex[byte >> 4];
    hex += kHex[byte & 0xf];
  }
  return hex;
}

std::string local_date(int day_offset) {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  local.tm_mday += day_offset;
  local.tm_hour = 12;  // away from DST switches
  local.tm_isdst = -1;
  std::mktime(&local);
  char text[16];
  std::strftime(text, sizeof(text), "%Y-%m-%d", &local);
  return text;
}

std::string py_call_body(std::string_view id, std::string_view secret, std::string_view category,
                         std::string_view service, std::string_view params_json) {
  std::string body = "<?xml version=\"1.0\"?>\n<event version=\"1\">\n";
  body += "    <id>" + std::string(id) + "</id>\n";
  body += "    <token>" + py_token(secret, local_date()) + "</token>\n";
  body += "    <catgory>" + std::string(category) + "</catgory>\n";
  body += "    <service>" + std::string(service) + "</service>\n";
  body += "    <params><![CDATA[" + std::string(params_json) + "]]></params>\n";
  body += "</event>";
  return body;
}

void require_own_state_dir(const std::vector<std::string>& argv) {
  const auto sbusd = std::find_if(argv.begin(), argv.end(),
                                  [](const std::string& arg) { return fs::path(arg).filename() == "sbusd"; });
  if (sbusd == argv.end()) return;
  std::string config;
  for (auto arg = sbusd + 1; arg != argv.end(); ++arg) {
    if (*arg == "--help" || *arg == "-h" || *arg == "--version" || *arg == "-V") return;
    if ((*arg == "--config" || *arg == "-c") && arg + 1 != argv.end()) config = *(arg + 1);
  }
  if (config.empty()) {
    throw std::logic_error("a test runs sbusd without --config: it would read the installed config and write " +
                           std::string("/var/lib/sbus; give it a config with a state_dir of the test's own"));
  }
  const std::string text = "\n" + read_file(config);
  if (text.find("\nstate_dir:") == std::string::npos) {
    throw std::logic_error("a test runs sbusd with " + config +
                           ", which names no state_dir: sbusd would write /var/lib/sbus; add `state_dir: " +
                           "TEMP/state` (a folder of the test's own)");
  }
}

ProcessResult run_program(const std::string& path, const std::vector<std::string>& args,
                          std::chrono::milliseconds limit) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed: " + errno_text());
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe failed: " + errno_text());
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = -1;
  try {
    pid = spawn(argv, null_fd, out_pipe[1], err_pipe[1]);
  } catch (...) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], null_fd}) ::close(fd);
    throw;
  }
  for (int fd : {out_pipe[1], err_pipe[1], null_fd}) ::close(fd);

  ProcessResult result;
  const auto deadline = Clock::now() + limit;
  bool killed = false;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_count = 2;
  while (open_count > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 && !killed) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    const int ready = ::poll(fds, 2, killed ? 1000 : static_cast<int>(std::min<long long>(left.count(), 1000)) + 1);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  for (const pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = decode_status(status);
  return result;
}

ProcessResult run_cli(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
  return run_program(std::string(SBUS_BUILD_DIR) + "/bin/sbus", args, limit);
}

ProcessResult broker_ctl(const std::vector<std::string>& args) {
  const std::string name_file = std::string(SBUS_TEST_BROKER_DIR) + "/name";
  std::string name = read_file(name_file);
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty()) throw std::runtime_error("no test broker: " + name_file + " is missing");
  std::string node_dir = read_file(std::string(SBUS_TEST_BROKER_DIR) + "/nodedir");
  while (!node_dir.empty() && (node_dir.back() == '\n' || node_dir.back() == ' ')) node_dir.pop_back();
  std::vector<std::string> argv = {"ctl", name, node_dir, "--"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(std::string(SBUS_SOURCE_DIR) + "/scripts/broker", argv, 60s);
}

std::string connection_named(const std::string& name, std::string* listing) {
  const std::string quoted = "\"" + name + "\"";
  std::string pid;
  wait_until(
      [&] {
        const ProcessResult connections =
            broker_ctl({"list_connections", "-q", "--no-table-headers", "pid", "client_properties"});
        if (listing != nullptr) *listing = connections.out + connections.err;
        if (connections.exit_code != 0) return false;
        std::istringstream rows(connections.out);
        for (std::string row; std::getline(rows, row);) {
          if (row.find(quoted) != std::string::npos) pid = row.substr(0, row.find('\t'));
        }
        return !pid.empty();
      },
      20s, 500ms);
  return pid;
}

bool close_outbox_connection(pid_t pid, std::string* listing) {
  const std::string outbox = connection_named("sbus outbox " + std::to_string(pid), listing);
  return !outbox.empty() && broker_ctl({"close_connection", outbox, "closed by the integration test"}).exit_code == 0;
}

BrokerUsers::~BrokerUsers() {
  for (const std::string& user : users_) broker_ctl({"delete_user", user});
}

void BrokerUsers::add(const std::string& user, const std::string& configure, const std::string& write,
                      const std::string& read) {
  const ProcessResult added = broker_ctl({"add_user", user, user});
  INFO(added.out << added.err);
  REQUIRE(added.exit_code == 0);
  users_.push_back(user);
  const ProcessResult set = broker_ctl({"set_permissions", "-p", "/", user, configure, write, read});
  INFO(set.out << set.err);
  REQUIRE(set.exit_code == 0);
}

std::string BrokerUsers::uri(const std::string& user) {
  return "amqp://" + user + ":" + user + "@127.0.0.1:" + std::to_string(broker_port()) + "/%2f";
}

SbusdProcess::SbusdProcess(SbusdOptions options) : node_(options.node.empty() ? unique_node() : options.node) {
  secret_ = options.secret.empty() ? std::string(kSecret) : options.secret;
  secret_file_ = write_secret(dir_.path(), secret_);
  state_dir_ = options.state_dir.empty() ? dir_.file("state") : options.state_dir;
  record_file_ = dir_.file("record.log");
  config_path_ = dir_.file("sbusd.yaml");
  log_path_ = dir_.file("sbusd.log");
  brokers_ = options.brokers.empty() ? std::vector<std::string>{broker_uri()} : options.brokers;

  std::string yaml;
  yaml += "node: " + node_ + "\n";
  yaml += "brokers:\n";
  for (const std::string& broker : brokers_) yaml += "  - " + broker + "\n";
  exchange_ = options.exchange;
  yaml += "exchange: " + exchange_ + "\n";
  yaml += "secret_file: " + secret_file_ + "\n";
  yaml += "state_dir: " + state_dir_ + "\n";
  yaml += "plugin_dir: " + (options.plugin_dir.empty() ? std::string(SBUS_BUILD_DIR "/plugins") : options.plugin_dir) +
          "\n";
  if (options.max_message_bytes > 0) {
    yaml += "max_message_bytes: " + std::to_string(options.max_message_bytes) + "\n";
  }
  yaml += "drain_timeout: " + std::to_string(options.drain_timeout_seconds) + "\n";
  yaml += "log_level: " + options.log_level + "\n";
  yaml += options.extra_yaml;
  const std::pair<std::string, std::string> services[] = {
      {"math.add", "    plugin: math\n"},
      {"test.echo", "    plugin: test\n"},
      {"test.sleep", "    plugin: test\n"},
      {"test.fail", "    plugin: test\n"},
      {"test.relay", "    plugin: test\n"},
      {"test.record", "    plugin: test\n    kind: message\n    options:\n      file: " + record_file_ + "\n"},
  };
  yaml += "services:\n";
  if (!options.services_yaml.empty()) {
    yaml += options.services_yaml;
  } else {
    for (const auto& [name, entry] : services) {
      yaml += "  - name: " + name + "\n" + entry;
      if (auto extra = options.service_yaml.find(name); extra != options.service_yaml.end()) yaml += extra->second;
    }
  }
  write_file(config_path_, yaml);

  const int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path_ + ": " + errno_text());
  std::vector<std::string> command;
  if (options.journal_stream) {
    struct stat info {};
    ::fstat(log_fd, &info);
    command = {"/usr/bin/env", "JOURNAL_STREAM=" + std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino)};
  }
  command.insert(command.end(), options.command_prefix.begin(), options.command_prefix.end());
  command.insert(command.end(), {std::string(SBUS_BUILD_DIR) + "/bin/sbusd", "--config", config_path_});
  try {
    pid_ = spawn(command, null_fd, log_fd, log_fd);
  } catch (...) {
    ::close(log_fd);
    ::close(null_fd);
    throw;
  }
  ::close(log_fd);
  ::close(null_fd);

  if (options.wait_ready) {
    try {
      wait_ready();
    } catch (...) {
      // The destructor does not run for a constructor that throws.
      stop();
      throw;
    }
  }
}

SbusdProcess::~SbusdProcess() {
  if (pid_ > 0 && !exit_code_) {
    try {
      stop();
    } catch (...) {
    }
  }
}

void SbusdProcess::wait_ready() {
  sbus::Sender sender(sender_options());
  std::optional<int> exited;
  const bool ready = wait_until(
      [&] {
        if ((exited = wait_exit(0ms))) return true;
        try {
          return sender.ping(node_, 250ms);
        } catch (const sbus::SenderError&) {
          // E.g. the exchange is not declared yet on a fresh broker: the
          // broker closes the channel and the sender reconnects next time.
          return false;
        }
      },
      15s, 50ms);
  if (exited) {
    throw std::runtime_error("sbusd exited with code " + std::to_string(*exited) +
                             " before answering PING; its log:\n" + log());
  }
  if (!ready) {
    throw std::runtime_error("sbusd node " + node_ + " did not answer PING within 15 s; its log:\n" + log());
  }
}

sbus::SenderOptions SbusdProcess::sender_options() const {
  sbus::SenderOptions options;
  options.brokers = {broker_uri()};
  options.secret = secret_;
  options.exchange = exchange_;
  return options;
}

std::vector<std::string> SbusdProcess::cli_args() const {
  if (exchange_ != "py-servicebus")
    return {"--broker", broker_uri(), "--secret-file", secret_file_, "--exchange", exchange_};
  return {"--broker", broker_uri(), "--secret-file", secret_file_};
}

void SbusdProcess::signal(int signal) {
  if (running()) ::kill(pid_, signal);
}

std::optional<int> SbusdProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  exit_code_ = wait_pid(pid_, timeout);
  return exit_code_;
}

int SbusdProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (exit_code_) return *exit_code_;
  ::kill(pid_, SIGTERM);
  if (wait_exit(grace)) return *exit_code_;
  ::kill(pid_, SIGKILL);
  wait_exit(10s);
  return exit_code_.value_or(-1);
}

std::string SbusdProcess::log() const {
  return read_file(log_path_);
}

RawAmqp::RawAmqp(int port) : RawAmqp(port, "guest", "guest") {}

RawAmqp::RawAmqp(int port, const std::string& user, const std::string& password) {
  state_ = amqp_new_connection();
  if (state_ == nullptr) throw std::runtime_error("amqp_new_connection failed");
  amqp_socket_t* socket = amqp_tcp_socket_new(state_);
  timeval timeout{5, 0};
  const int status =
      socket == nullptr ? AMQP_STATUS_NO_MEMORY : amqp_socket_open_noblock(socket, "127.0.0.1", port, &timeout);
  if (status != AMQP_STATUS_OK) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("raw connect to 127.0.0.1:" + std::to_string(port) +
                             " failed: " + amqp_error_string2(status));
  }
  const amqp_rpc_reply_t login =
      amqp_login(state_, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN, user.c_str(), password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    amqp_destroy_connection(state_);
    throw std::runtime_error("raw login failed: " + amqp_reply_text(login));
  }
  amqp_channel_open(state_, 1);
  try {
    check("channel.open");
  } catch (...) {
    amqp_destroy_connection(state_);
    throw;
  }
}

RawAmqp::~RawAmqp() {
  timeval quick{1, 0};
  amqp_set_rpc_timeout(state_, &quick);
  amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(state_);
}

void RawAmqp::check(std::string_view what) const {
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    throw std::runtime_error("raw " + std::string(what) + " failed: " + amqp_reply_text(reply));
  }
}

std::string RawAmqp::declare_reply_queue() {
  amqp_queue_declare_ok_t* ok = amqp_queue_declare(state_, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  check("declare reply queue");
  const std::string name = to_string(ok->queue);
  amqp_basic_consume(state_, 1, bytes(name), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
  check("consume " + name);
  return name;
}

void RawAmqp::publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
                      std::string_view reply_to, std::string_view correlation_id,
                      const std::vector<std::pair<std::string, std::string>>& headers, std::string_view expiration,
                      std::optional<std::string_view> message_id) {
  amqp_basic_properties_t props{};
  if (message_id) {
    props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    props.message_id = bytes(*message_id);
  }
  std::vector<amqp_table_entry_t> entries;
  for (const auto& [key, value] : headers) {
    amqp_table_entry_t entry{bytes(key), {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = bytes(value);
    entries.push_back(entry);
  }
  if (!entries.empty()) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  }
  if (!reply_to.empty()) {
    props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    props.reply_to = bytes(reply_to);
  }
  if (!correlation_id.empty()) {
    props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = bytes(correlation_id);
  }
  if (!expiration.empty()) {
    props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
    props.expiration = bytes(expiration);
  }
  const int status = amqp_basic_publish(state_, 1, bytes(exchange), bytes(routing_key), 0, 0, &props, bytes(body));
  if (status != AMQP_STATUS_OK) {
    throw std::runtime_error(std::string("raw publish failed: ") + amqp_error_string2(status));
  }
}

std::optional<RawAmqp::Message> RawAmqp::receive(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    timeval tv{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(state_);
    const amqp_rpc_reply_t ret = amqp_consume_message(state_, &envelope, &tv, 0);
    if (ret.reply_type == AMQP_RESPONSE_NORMAL) {
      Message message;
      const amqp_basic_properties_t& props = envelope.message.properties;
      message.body = to_string(envelope.message.body);
      message.has_reply_to = (props._flags & AMQP_BASIC_REPLY_TO_FLAG) != 0;
      if (message.has_reply_to) message.reply_to = to_string(props.reply_to);
      message.has_correlation_id = (props._flags & AMQP_BASIC_CORRELATION_ID_FLAG) != 0;
      if (message.has_correlation_id) message.correlation_id = to_string(props.correlation_id);
      message.delivery_tag = envelope.delivery_tag;
      amqp_destroy_envelope(&envelope);
      return message;
    }
    if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && ret.library_error == AMQP_STATUS_TIMEOUT) {
      return std::nullopt;
    }
    if (ret.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && ret.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      amqp_frame_t frame;
      if (amqp_simple_wait_frame(state_, &frame) != AMQP_STATUS_OK) {
        throw std::runtime_error("raw connection lost");
      }
      if (frame.frame_type == AMQP_FRAME_METHOD && (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                                    frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        throw std::runtime_error("the broker closed the raw channel");
      }
      continue;  // e.g. basic.ack or a consumer-cancel notice: not a delivery
    }
    throw std::runtime_error("raw receive failed: " + amqp_reply_text(ret));
  }
}

std::optional<std::string> between(std::string_view text, std::string_view open, std::string_view close) {
  const std::size_t start = text.find(open);
  if (start == std::string_view::npos) return std::nullopt;
  const std::size_t from = start + open.size();
  const std::size_t end = text.find(close, from);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(text.substr(from, end - from));
}

std::set<std::string> mapped_libraries(pid_t pid) {
  std::set<std::string> libraries;
  std::istringstream lines(read_file("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string line; std::getline(lines, line);) {
    const std::size_t slash = line.rfind('/');
    if (slash != std::string::npos && line.find(".so", slash) != std::string::npos) {
      libraries.insert(line.substr(slash + 1));
    }
  }
  return libraries;
}

bool maps_library(const std::set<std::string>& libraries, const std::string& prefix) {
  return std::any_of(libraries.begin(), libraries.end(),
                     [&](const std::string& name) { return name.rfind(prefix, 0) == 0; });
}

pid_t worker_pid_in_log(const std::string& log, const std::string& redacted_broker) {
  const std::string needle = "worker for " + redacted_broker + " started, pid ";
  const std::size_t at = log.rfind(needle);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::atol(log.c_str() + at + needle.size()));
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

rapidjson::Document stats_of(sbus::Sender& sender, const SbusdProcess& sbusd) {
  const sbus::CallResult result = sender.call(sbusd.address("sbus.stats"), "[]", 10s);
  REQUIRE(result.ok());
  rapidjson::Document stats;
  stats.Parse(result.message.c_str());
  REQUIRE(stats.IsObject());
  return stats;
}

std::uint64_t service_stat(const rapidjson::Document& stats, const char* service, const char* key) {
  REQUIRE(stats["services"].HasMember(service));
  REQUIRE(stats["services"][service].HasMember(key));
  return stats["services"][service][key].GetUint64();
}

}  // namespace sbus_test
