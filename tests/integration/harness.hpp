// What the integration tests share: the test broker (started by the CTest
// fixture `broker`, see tests/integration/test_broker), temporary folders,
// sbusd and sbus as real child processes, and a raw rabbitmq-c client that
// speaks to the broker without any sbus code in between.
//
// Every function runs on the test's main thread unless its comment says
// otherwise. Failures of the harness itself (a broker that is not there, an
// sbusd that never answers) throw std::runtime_error with a sentence saying
// what is missing, which Catch2 reports as the test's failure.
#pragma once

#include <amqp.h>
#include <rapidjson/document.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sbus/sender.hpp>

namespace sbus_test {

// Whether a process's RSS says what its own allocations hold: under
// AddressSanitizer or ThreadSanitizer the allocator keeps freed memory in
// quarantine and maps shadow memory, so memory figures are printed but
// asserted only in builds without them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kRssMeasurable = false;
#else
inline constexpr bool kRssMeasurable = true;
#endif

using namespace std::chrono_literals;

// The secret every sbusd of the tests checks tokens against.
inline constexpr const char* kSecret = "integration test secret";

// The test broker's AMQP port, read from SBUS_TEST_BROKER_DIR/port.
int broker_port();
// amqp://guest:guest@127.0.0.1:PORT/%2f
std::string broker_uri();

// A TCP port on 127.0.0.1 that refuses connections for the object's
// lifetime: a socket is bound to it but does not listen, so nobody else can
// take it meanwhile.
class DeadPort {
 public:
  DeadPort();
  ~DeadPort();
  DeadPort(const DeadPort&) = delete;
  DeadPort& operator=(const DeadPort&) = delete;

  int port() const { return port_; }
  std::string uri() const;

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A fresh folder under $TMPDIR (or /tmp), removed with its content on
// destruction unless SBUS_TEST_KEEP is set in the environment.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

std::string read_file(const std::string& path);  // "" if it cannot be read
void write_file(const std::string& path, std::string_view text);

// Writes `secret` to DIR/secret with mode 0600 and returns the file's path.
std::string write_secret(const std::string& dir, std::string_view secret = kSecret);

// Calls `predicate` every `interval` until it returns true (then true) or
// `timeout` has passed (then false, after one last try).
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 20ms);

// A node name no other test (or earlier run) uses: "it-<pid>-<counter>".
std::string unique_node();

// The py-servicebus token, hex(SHA-1(SECRET " - " DATE)), computed with
// OpenSSL here rather than with sbus's own code, and the local date as
// YYYY-MM-DD shifted by `day_offset` days.
std::string py_token(std::string_view secret, std::string_view date);
std::string local_date(int day_offset = 0);

// A call body exactly as py-servicebus writes it (PROTOCOL.md), with
// today's token for `secret`.
std::string py_call_body(std::string_view id, std::string_view secret, std::string_view category,
                         std::string_view service, std::string_view params_json);

// The file names of the shared objects `pid` maps, from /proc/PID/maps
// ("libc.so.6", "sbusd-worker.so").
std::set<std::string> mapped_libraries(pid_t pid);
// Whether one of `libraries` starts with `prefix` ("libssl.so").
bool maps_library(const std::set<std::string>& libraries, const std::string& prefix);

// The pid of the worker for `redacted_broker` that sbusd's log `log` last
// reported started; -1 if none.
pid_t worker_pid_in_log(const std::string& log, const std::string& redacted_broker);

struct ProcessResult {
  int exit_code = -1;  // the exit code, or 128 + the signal that killed it
  std::string out;
  std::string err;
};

// Runs build/bin/sbus with `args` and collects its output. A run longer
// than `limit` is killed (exit_code 128 + SIGKILL).
ProcessResult run_cli(const std::vector<std::string>& args, std::chrono::milliseconds limit = 30s);
// Same for any program given by path.
ProcessResult run_program(const std::string& path, const std::vector<std::string>& args,
                          std::chrono::milliseconds limit = 30s);

// Throws std::logic_error when `argv` (a program and its arguments, maybe
// behind a prefix such as env or unshare) runs sbusd with a config that
// names no state_dir of its own: sbusd would then use the default
// /var/lib/sbus, which a test must never write (docs/development.md). The
// config is `--config FILE`, which must hold a `state_dir:` line; sbusd
// without --config reads the installed config and is refused too, but for
// --help and --version. Called by every
// spawn of the harness; a test that forks sbusd itself calls it too.
void require_own_state_dir(const std::vector<std::string>& argv);

// `rabbitmqctl ARGS` against the test broker (scripts/broker ctl); takes a
// second or two.
ProcessResult broker_ctl(const std::vector<std::string>& args);

// The pid (as rabbitmqctl names it) of the broker connection whose client
// properties hold `name` ("sbusd NODE", "sbus outbox PID"), listed again
// for up to 20 s: rabbitmqctl may time out on a loaded machine. Empty when
// there is none; `listing` gets the connections the broker last listed.
std::string connection_named(const std::string& name, std::string* listing = nullptr);

// Closes the broker connection that releases the held sends of process
// `pid` ("sbus outbox PID"). False when there is none; `listing` gets the
// connections the broker listed.
bool close_outbox_connection(pid_t pid, std::string* listing);

// Broker users made with rabbitmqctl on the test broker for one test,
// deleted on destruction.
class BrokerUsers {
 public:
  BrokerUsers() = default;
  ~BrokerUsers();
  BrokerUsers(const BrokerUsers&) = delete;
  BrokerUsers& operator=(const BrokerUsers&) = delete;

  // Adds `user` (password: the user name) with these permissions on vhost
  // /; the test fails (REQUIRE) if rabbitmqctl refuses.
  void add(const std::string& user, const std::string& configure, const std::string& write, const std::string& read);
  // amqp://USER:USER@127.0.0.1:PORT/%2f on the test broker.
  static std::string uri(const std::string& user);

 private:
  std::vector<std::string> users_;
};

struct SbusdOptions {
  // Written to the config's `brokers:`; empty means {broker_uri()}.
  std::vector<std::string> brokers;
  // 0 keeps sbusd's default.
  std::size_t max_message_bytes = 0;
  int drain_timeout_seconds = 30;
  // Top-level YAML lines added to the config as they are, e.g. "ping_interval: 0\n".
  std::string extra_yaml;
  // The config's log_level.
  std::string log_level = "debug";
  // When not empty: the config's `services:` list (its entries, as YAML
  // lines) instead of the default services.
  std::string services_yaml;
  // When not empty: the config's plugin_dir instead of build/plugins.
  std::string plugin_dir;
  // Wait in the constructor until the node answers PING.
  bool wait_ready = true;
  // The shared secret (secret_file() holds it); empty means kSecret.
  std::string secret;
  // The YAML's state_dir; empty means a folder of the process's own.
  std::string state_dir;
  // The node name; empty means unique_node().
  std::string node;
  // YAML lines added to a service's entry, by its name, e.g.
  // {"test.sleep", "    queue_len: 5\n"}.
  std::map<std::string, std::string> service_yaml;
  // The exchange of the node (and of sender_options() and cli_args()): a
  // test that deletes it takes one of its own.
  std::string exchange = "py-servicebus";
  // Arguments run before sbusd's own (a wrapper that execs the rest, e.g.
  // unshare), empty for none.
  std::vector<std::string> command_prefix;
  // Starts sbusd with JOURNAL_STREAM naming its stderr (the log file), as
  // systemd does for a service whose output goes to the journal.
  bool journal_stream = false;
};

// An sbusd child process with its own config, secret and log in a temp
// folder, serving a unique node with math.add, test.echo, test.sleep,
// test.fail, test.relay and test.record (kind message, writing to
// record_file()).
class SbusdProcess {
 public:
  explicit SbusdProcess(SbusdOptions options = {});
  // Stops it (see stop()) if it still runs.
  ~SbusdProcess();
  SbusdProcess(const SbusdProcess&) = delete;
  SbusdProcess& operator=(const SbusdProcess&) = delete;

  const std::string& node() const { return node_; }
  // NODE.CATEGORY.SERVICE for "CATEGORY.SERVICE".
  std::string address(std::string_view service) const { return node_ + "." + std::string(service); }
  const std::string& config_path() const { return config_path_; }
  const std::string& secret_file() const { return secret_file_; }
  const std::string& record_file() const { return record_file_; }
  const std::string& state_dir() const { return state_dir_; }
  pid_t pid() const { return pid_; }

  // Options for an sbus::Sender that reaches this node with the right secret.
  sbus::SenderOptions sender_options() const;
  // The broker and secret arguments of the sbus CLI for this node.
  std::vector<std::string> cli_args() const;

  // Sends `signal` to the supervisor.
  void signal(int signal);
  // Waits up to `timeout` for sbusd to exit by itself; its exit code (or
  // 128 + signal) if it did.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGTERM, then waits; after `grace` SIGKILL. Returns the exit code (or
  // 128 + signal). Once stopped, returns the same code again.
  int stop(std::chrono::milliseconds grace = 10s);
  bool running() const { return pid_ > 0 && !exit_code_; }

  // What sbusd wrote to stdout and stderr so far.
  std::string log() const;

 private:
  void wait_ready();

  TempDir dir_;
  std::string node_;
  std::string secret_;
  std::string secret_file_;
  std::string state_dir_;
  std::string record_file_;
  std::string config_path_;
  std::string log_path_;
  std::vector<std::string> brokers_;
  std::string exchange_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// One rabbitmq-c connection to the test broker as guest, with channel 1
// open: the tests' way to publish and read raw bodies and properties, as a
// py-servicebus peer would. Owned by one thread at a time (rabbitmq-c is not
// thread-safe); throws std::runtime_error naming what failed.
class RawAmqp {
 public:
  explicit RawAmqp(int port = broker_port());
  // Logged in as `user` (vhost /) instead of guest.
  RawAmqp(int port, const std::string& user, const std::string& password);
  ~RawAmqp();
  RawAmqp(const RawAmqp&) = delete;
  RawAmqp& operator=(const RawAmqp&) = delete;

  amqp_connection_state_t get() const { return state_; }

  // Throws unless the last synchronous method succeeded.
  void check(std::string_view what) const;

  // Declares an exclusive, auto-delete, server-named queue, as a
  // py-servicebus sender does for each call, and consumes it without acks
  // on channel 1. Returns its name.
  std::string declare_reply_queue();

  // Publishes on channel 1. reply_to, correlation_id and the AMQP
  // expiration (milliseconds, as text) are set when not empty; `headers`
  // as text values; the message_id property when `message_id` is set.
  void publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
               std::string_view reply_to = {}, std::string_view correlation_id = {},
               const std::vector<std::pair<std::string, std::string>>& headers = {}, std::string_view expiration = {},
               std::optional<std::string_view> message_id = std::nullopt);

  struct Message {
    std::string body;
    std::string reply_to;        // empty when the property is absent
    std::string correlation_id;  // empty when the property is absent
    bool has_reply_to = false;
    bool has_correlation_id = false;
    std::uint64_t delivery_tag = 0;
  };
  // The next delivery of any consumer of this connection, or nothing after
  // `timeout`. Throws if the broker closes the channel or connection.
  std::optional<Message> receive(std::chrono::milliseconds timeout);

 private:
  amqp_connection_state_t state_ = nullptr;
};

// Text between the first `open` and the following `close`, or nullopt.
std::optional<std::string> between(std::string_view text, std::string_view open, std::string_view close);

// Whether `text` contains `part`.
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// `a` followed by `b`: a command line and the options every call adds.
std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b);

// The sbus.stats of `sbusd`, asked through `sender` and parsed; the test
// fails (REQUIRE) unless it answers a JSON object.
rapidjson::Document stats_of(sbus::Sender& sender, const SbusdProcess& sbusd);
// The counter `key` of `service` in those stats; the test fails (REQUIRE)
// unless it is there.
std::uint64_t service_stat(const rapidjson::Document& stats, const char* service, const char* key);

}  // namespace sbus_test
