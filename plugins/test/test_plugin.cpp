// The test plugin: services to try sbus with and to test it.
//   test.echo    answers its params unchanged, byte for byte as they came
//                (Request::params_json(): no parse, no re-writing); with
//                `options: {stop_file: PATH}` its stop() creates that file.
//                Serves messages too, and does nothing with them (a sink, as
//                the benchmark's)
//   test.rewrite answers its params as the SDK writes them back from their
//                document (Response::send(request.params())): compact, with
//                escapes such as \u00e9 written as the UTF-8 character
//   test.sleep   sleeps the given seconds (a number, or [seconds]), answers them;
//                stops early, answering deadline_exceeded, once its caller
//                has given up (Request::given_up())
//   test.fail    throws, to show that a failing service gets an error reply
//   test.fail_message  (kind: message) throws, to try the retries and the
//                error queue
//   test.fail_event  (kind: event) the same for an event
//   test.crash   dereferences null: the worker dies and the supervisor
//                restarts it (do not configure it in production); params
//                "alive?" answer the pid of the process instead
//   test.alloc   allocates the given MiB (a number) and keeps it, touched:
//                a leak on request; answers the MiB kept so far
//   test.crash_message  (kind: message) the same for a message
//   test.record  (kind: message) appends its params as a JSON line to the
//                file named by the service's `options: {file: PATH}`; params
//                {"sleep": SECONDS, ...} sleep first (a stuck message service),
//                {"wait_file": PATH, ...} waits first until PATH exists (at
//                most a minute: a run the test ends when it chooses).
//                Serves calls too: records, then answers true. As an
//                event service (kind: event) it records one line
//                {"topic": TOPIC, "params": PARAMS} per event, sleeping
//                first as a message does. With
//                `id_file: PATH` among its options, it also appends each
//                call's, message's or event's message id
//                (Request::message_id(), "-" for none) as a line there.
//                `keep_open: true` keeps FILE open from start() to stop()
//                and writes each line with one write() (the events
//                benchmark: a handler that costs what a real one does, not
//                an open and a close per event); a file moved or deleted
//                meanwhile is then not made again. Any value but true or
//                false fails start().
//   test.relay   calls another service through sbus::Sender, as a service
//                that uses others does: {"address": "N.C.S", "params": ...};
//                or publishes an event, {"topic": "T", "params": ...}, and
//                answers whether anyone was subscribed
//   test.sends   sends messages through its ServiceContext's sender, held
//                until it returns (docs/plugins.md, "What a handler sends"):
//                params {"to": "N.C.S", "count": N, "key": K} send N messages
//                {"key": K, "n": I} (I from 0) to N.C.S; "fail": F throws
//                after sending, on the first F attempts for that key; "now":
//                true sends them all with SendOptions::now, "now_first": true
//                only the first; "sleep": S sleeps S seconds after sending;
//                "stall_file": PATH hangs for an hour after sending when that
//                file does not exist yet, creating it (stuck the first time).
//                Serves messages and calls (answers true)
//   test.whoami  answers who called it (Request::caller()), as a JSON string
//   test.log     logs the text of its params ["TEXT"] at info and at debug
//                level through sbus/log.hpp, and answers true
//   test.stall_once  hangs for an hour on the first call it ever gets, and
//                answers "again" to later ones: "first" is remembered by
//                creating the file of `options: {file: PATH}` (a stuck call
//                that is run again after a restart)
#include <sbus/log.hpp>
#include <sbus/plugin.hpp>
#include <sbus/sender.hpp>

#include <algorithm>
#include <map>
#include <chrono>
#include <memory>
#include <mutex>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

class EchoService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    auto file = context.options.find("stop_file");
    if (file != context.options.end()) stop_file_ = file->second;
  }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    response.send_json(std::string(request.params_json()));
  }

  void on_message(const sbus::Request&) override {}

  void stop() override {
    if (stop_file_.empty()) return;
    if (std::FILE* mark = std::fopen(stop_file_.c_str(), "w")) std::fclose(mark);
  }

 private:
  std::string stop_file_;
};

class RewriteService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override { response.send(request.params()); }
};

class SleepService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    const rapidjson::Value* seconds = &params;
    if (params.IsArray() && params.Size() == 1) seconds = &params[0];
    if (!seconds->IsNumber() || seconds->GetDouble() < 0 || seconds->GetDouble() > 3600) {
      response.error("invalid_params", "test.sleep takes a number of seconds (0 to 3600)");
      return;
    }
    // A long service stops early once its caller has given up: it polls.
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                               std::chrono::duration<double>(seconds->GetDouble()));
    while (std::chrono::steady_clock::now() < until) {
      if (request.given_up()) {
        response.error("deadline_exceeded", "test.sleep stopped early: its caller gave up");
        return;
      }
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(20), until - std::chrono::steady_clock::now()));
    }
    response.send(*seconds);
  }
};

class FailService : public sbus::Service {
 public:
  void on_call(const sbus::Request&, sbus::Response&) override { throw std::runtime_error("test.fail always fails"); }
};

class FailMessageService : public sbus::Service {
 public:
  void on_message(const sbus::Request&) override { throw std::runtime_error("test.fail_message always fails"); }
};

class FailEventService : public sbus::Service {
 public:
  void on_event(const sbus::Request& request) override {
    throw std::runtime_error("test.fail_event always fails, also for " + request.topic());
  }
};

class CrashService : public sbus::Service {
 public:
  // A real SIGSEGV in sanitized builds too: UBSan would otherwise catch the
  // null store and exit(1) first (./scripts/test --sanitize).
  __attribute__((no_sanitize("null"))) void on_call(const sbus::Request& request, sbus::Response& response) override {
    if (request.params().IsString() && request.params().GetString() == std::string("alive?")) {
      response.send(static_cast<std::int64_t>(getpid()));
      return;
    }
    volatile int* null = nullptr;
    *null = 1;
  }
};

// Keeps what each call allocates, touched page by page so that it counts
// in the RSS: a leak on request.
class AllocService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const auto& params = request.params();
    if (!params.IsInt64() || params.GetInt64() < 0 || params.GetInt64() > 4096) {
      response.error("invalid_params", "test.alloc takes a number of MiB (0 to 4096)");
      return;
    }
    std::vector<char>& block = kept_.emplace_back(static_cast<std::size_t>(params.GetInt64()) << 20);
    for (std::size_t i = 0; i < block.size(); i += 4096) block[i] = 1;
    total_ += static_cast<std::int64_t>(params.GetInt64());
    response.send(total_);
  }

 private:
  std::vector<std::vector<char>> kept_;
  std::int64_t total_ = 0;
};

class CrashMessageService : public sbus::Service {
 public:
  __attribute__((no_sanitize("null"))) void on_message(const sbus::Request&) override {
    volatile int* null = nullptr;
    *null = 1;
  }
};

class RecordService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    auto file = context.options.find("file");
    if (file == context.options.end() || file->second.empty()) {
      throw std::runtime_error("test.record needs options: {file: PATH}");
    }
    path_ = file->second;
    if (auto ids = context.options.find("id_file"); ids != context.options.end()) id_path_ = ids->second;
    if (auto keep = context.options.find("keep_open"); keep != context.options.end() && keep->second != "false") {
      if (keep->second != "true") {
        throw std::runtime_error("test.record: keep_open is true or false, not '" + keep->second + "'");
      }
      kept_ = std::fopen(path_.c_str(), "a");
      if (kept_ == nullptr) throw std::runtime_error("cannot open " + path_);
    }
  }

  void stop() override {
    if (kept_ != nullptr) std::fclose(kept_);
    kept_ = nullptr;
  }
  ~RecordService() override { stop(); }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    on_message(request);
    response.send(true);
  }

  void on_message(const sbus::Request& request) override {
    sleep_if_asked(request);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    request.params().Accept(writer);
    append(buffer);
    append_id(request);
  }

  void on_event(const sbus::Request& request) override {
    sleep_if_asked(request);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    writer.Key("topic");
    writer.String(request.topic().c_str(), static_cast<rapidjson::SizeType>(request.topic().size()));
    writer.Key("params");
    request.params().Accept(writer);
    writer.EndObject();
    append(buffer);
    append_id(request);
  }

 private:
  static void sleep_if_asked(const sbus::Request& request) {
    const rapidjson::Value& params = request.params();
    if (!params.IsObject()) return;
    if (params.HasMember("sleep") && params["sleep"].IsNumber()) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(params["sleep"].GetDouble(), 3600.0)));
    }
    if (params.HasMember("wait_file") && params["wait_file"].IsString()) {
      wait_for_file(params["wait_file"].GetString(), std::chrono::seconds(60));
    }
  }

  static void wait_for_file(const char* path, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (std::FILE* seen = std::fopen(path, "r")) {
        std::fclose(seen);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void append(const rapidjson::StringBuffer& buffer) {
    if (kept_ != nullptr) {
      std::lock_guard<std::mutex> lock(kept_mutex_);
      std::fprintf(kept_, "%s\n", buffer.GetString());
      if (std::fflush(kept_) != 0) throw std::runtime_error("cannot write " + path_);
      return;
    }
    std::FILE* out = std::fopen(path_.c_str(), "a");
    if (out == nullptr) throw std::runtime_error("cannot open " + path_);
    std::fprintf(out, "%s\n", buffer.GetString());
    std::fclose(out);
  }

  void append_id(const sbus::Request& request) {
    if (id_path_.empty()) return;
    std::FILE* out = std::fopen(id_path_.c_str(), "a");
    if (out == nullptr) throw std::runtime_error("cannot open " + id_path_);
    const std::string_view id = request.message_id();
    std::fprintf(out, "%.*s\n", static_cast<int>(id.empty() ? 1 : id.size()), id.empty() ? "-" : id.data());
    std::fclose(out);
  }

  std::string path_;
  std::string id_path_;
  std::FILE* kept_ = nullptr;  // keep_open: the file, open from start() to stop()
  std::mutex kept_mutex_;
};

class RelayService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override { context_ = &context; }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    const bool publishes = params.IsObject() && params.HasMember("topic") && params["topic"].IsString();
    if (!params.IsObject() || !(publishes || (params.HasMember("address") && params["address"].IsString())) ||
        !params.HasMember("params")) {
      response.error("invalid_params",
                     R"(test.relay takes {"address": "NODE.CATEGORY.SERVICE", "params": ...} or {"topic": ...})");
      return;
    }
    rapidjson::StringBuffer inner;
    rapidjson::Writer<rapidjson::StringBuffer> writer(inner);
    params["params"].Accept(writer);
    // One connection for the service's lifetime, made on first use.
    if (!sender_) sender_ = std::make_unique<sbus::Sender>(context_->sender());
    if (publishes) {
      // Sent now, not held until on_call returns: the answer says whether
      // anyone was subscribed, which only the broker's confirm tells.
      sbus::SendOptions now;
      now.now = true;
      response.send(sender_->publish(params["topic"].GetString(), inner.GetString(), now));
      return;
    }
    sbus::CallResult result = sender_->call(params["address"].GetString(), inner.GetString(), std::chrono::seconds(10));
    if (result.ok()) {
      response.send_json(result.message);
    } else {
      response.error(result.error_code, result.message);
    }
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;  // valid until stop() returns
  std::unique_ptr<sbus::Sender> sender_;
};

class SendsService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override { context_ = &context; }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    on_message(request);
    response.send(true);
  }

  void on_message(const sbus::Request& request) override {
    const rapidjson::Value& params = request.params();
    if (!params.IsObject() || !params.HasMember("to") || !params["to"].IsString() || !params.HasMember("key") ||
        !params["key"].IsString()) {
      throw std::invalid_argument(R"(test.sends takes {"to": "NODE.CATEGORY.SERVICE", "key": "K", ...})");
    }
    const std::string key = params["key"].GetString();
    const int count = params.HasMember("count") && params["count"].IsInt() ? params["count"].GetInt() : 1;
    const int fail = params.HasMember("fail") && params["fail"].IsInt() ? params["fail"].GetInt() : 0;
    const bool now = params.HasMember("now") && params["now"].IsTrue();
    const bool now_first = params.HasMember("now_first") && params["now_first"].IsTrue();
    if (!sender_) sender_ = std::make_unique<sbus::Sender>(context_->sender());
    for (int n = 0; n < count; ++n) {
      sbus::SendOptions options;
      options.now = now || (now_first && n == 0);
      sender_->send(params["to"].GetString(), R"({"key":")" + key + R"(","n":)" + std::to_string(n) + "}", options);
    }
    if (params.HasMember("sleep") && params["sleep"].IsNumber()) {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(params["sleep"].GetDouble(), 3600.0)));
    }
    if (params.HasMember("stall_file") && params["stall_file"].IsString()) stall_once(params["stall_file"].GetString());
    if (++attempts_[key] <= fail) {
      throw std::runtime_error("test.sends: attempt " + std::to_string(attempts_[key]) + " of " + key + " fails");
    }
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;  // valid until stop() returns
  std::unique_ptr<sbus::Sender> sender_;
  std::map<std::string, int> attempts_;

  static void stall_once(const std::string& path) {
    if (std::FILE* seen = std::fopen(path.c_str(), "r")) {
      std::fclose(seen);
      return;
    }
    if (std::FILE* mark = std::fopen(path.c_str(), "w")) std::fclose(mark);
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
};

class WhoamiService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override { response.send(request.caller()); }
};

class LogService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override { context_ = &context; }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    const rapidjson::Value& params = request.params();
    if (!params.IsArray() || params.Size() != 1 || !params[0].IsString()) {
      response.error("invalid_params", R"(test.log takes ["TEXT"])");
      return;
    }
    const std::string text(params[0].GetString(), params[0].GetStringLength());
    sbus::log_info(*context_, "info line: " + text);
    sbus::log_debug(*context_, "debug line: " + text);
    response.send(true);
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;
};

class StallOnceService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    auto file = context.options.find("file");
    if (file == context.options.end() || file->second.empty()) {
      throw std::runtime_error("test.stall_once needs options: {file: PATH}");
    }
    path_ = file->second;
  }

  void on_call(const sbus::Request&, sbus::Response& response) override {
    if (std::FILE* seen = std::fopen(path_.c_str(), "r")) {
      std::fclose(seen);
      response.send("again");
      return;
    }
    if (std::FILE* mark = std::fopen(path_.c_str(), "w")) std::fclose(mark);
    std::this_thread::sleep_for(std::chrono::hours(1));
    response.send("first");
  }

 private:
  std::string path_;
};

}  // namespace

SBUS_PLUGIN("test", SBUS_SERVICE("echo", EchoService, sbus::Kind::kCall | sbus::Kind::kMessage),
            SBUS_SERVICE("sleep", SleepService, sbus::Kind::kCall),
            SBUS_SERVICE("fail", FailService, sbus::Kind::kCall),
            SBUS_SERVICE("fail_message", FailMessageService, sbus::Kind::kMessage),
            SBUS_SERVICE("fail_event", FailEventService, sbus::Kind::kEvent),
            SBUS_SERVICE("crash", CrashService, sbus::Kind::kCall),
            SBUS_SERVICE("alloc", AllocService, sbus::Kind::kCall),
            SBUS_SERVICE("crash_message", CrashMessageService, sbus::Kind::kMessage),
            SBUS_SERVICE("record", RecordService, sbus::Kind::kCall | sbus::Kind::kMessage | sbus::Kind::kEvent),
            SBUS_SERVICE("relay", RelayService, sbus::Kind::kCall), SBUS_SERVICE("log", LogService, sbus::Kind::kCall),
            SBUS_SERVICE("whoami", WhoamiService, sbus::Kind::kCall),
            SBUS_SERVICE("sends", SendsService, sbus::Kind::kCall | sbus::Kind::kMessage),
            SBUS_SERVICE("stall_once", StallOnceService, sbus::Kind::kCall),
            SBUS_SERVICE("rewrite", RewriteService, sbus::Kind::kCall))
