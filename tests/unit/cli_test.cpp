// The command line's table at work, without a broker: the help is written
// from the table, a verb is found by its words, its operands are counted,
// and what it needs is checked before anything connects.
#include <catch2/catch.hpp>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.hpp"
#include "client/cli/cli.hpp"
#include "client/cli/exit_code.hpp"
#include "client/cli/sender_options.hpp"
#include "client/cli/usage.hpp"
#include "client/cli/verb.hpp"

using sbus::cli::ExitCode;
using sbus::cli::Verb;

namespace {

using Run = sbus_test::CliRun;
using sbus_test::sbus_cli;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `text` with each run of spaces and line breaks made one space: the help
// wraps long lines.
std::string flattened(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n';
    if (!space) {
      out += c;
    } else if (out.empty() || out.back() != ' ') {
      out += ' ';
    }
  }
  return out;
}

const Verb& verb_named(const std::string& name) {
  for (const Verb& verb : sbus::cli::verbs()) {
    if (verb.name == name) return verb;
  }
  FAIL("no verb " << name);
  throw;
}

}  // namespace

TEST_CASE("sbus --help lists every verb of the table with its operands and summary, and every exit code", "[cli]") {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"help"}}) {
    const Run run = sbus_cli(args);
    INFO(run.out);
    CHECK(run.code == ExitCode::kOk);
    for (const Verb& verb : sbus::cli::verbs()) {
      CHECK(contains(run.out, "sbus " + std::string(verb.name) + " " + std::string(verb.operands)));
      CHECK(contains(run.out, std::string(verb.summary)));
    }
    for (const auto& row : sbus::cli::exit_codes()) {
      CHECK(contains(flattened(run.out), std::to_string(static_cast<int>(row.code)) + " " + std::string(row.name) +
                                             " " + std::string(row.meaning)));
    }
    CHECK(contains(run.out, "--timeout"));
  }
}

TEST_CASE("sbus VERB --help and sbus help VERB show that verb alone", "[cli]") {
  SECTION("one verb") {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"call", "--help"}, {"help", "call"}, {"call", "X.Y.Z", "--help"}}) {
      const Run run = sbus_cli(args);
      CHECK(run.code == ExitCode::kOk);
      CHECK(contains(run.out, "sbus call NODE.CATEGORY.SERVICE 'JSON' [options]"));
      CHECK_FALSE(contains(run.out, "sbus send"));
    }
  }
  SECTION("a word that begins two verbs shows both") {
    const Run run = sbus_cli({"errors", "--help"});
    CHECK(contains(run.out, "sbus errors list NODE"));
    CHECK(contains(run.out, "sbus errors requeue NODE"));
    CHECK_FALSE(contains(run.out, "sbus call"));
  }
}

TEST_CASE("A word that names no verb, or a verb with the wrong operands, is a usage error", "[cli]") {
  SECTION("no such verb") {
    const Run run = sbus_cli({"halp"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(contains(run.err, "sbus: no verb halp"));
  }
  SECTION("no verb at all") {
    CHECK(sbus_cli({}).code == ExitCode::kUsage);
  }
  SECTION("too few operands") {
    const Run run = sbus_cli({"call", "NODE.math.add"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(contains(run.err, "sbus: expected call NODE.CATEGORY.SERVICE 'JSON'\n"));
  }
  SECTION("too many operands") {
    CHECK(contains(sbus_cli({"ping", "A", "B"}).err, "sbus: expected ping NODE\n"));
  }
  SECTION("errors without list or requeue names both") {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"errors"}, {"errors", "NODE"}, {"errors", "drop", "NODE"}}) {
      const Run run = sbus_cli(args);
      CHECK(run.code == ExitCode::kUsage);
      CHECK(contains(run.err, "sbus: expected errors list NODE or errors requeue NODE\n"));
    }
  }
  SECTION("an unknown option") {
    CHECK(sbus_cli({"ping", "A", "--bogus"}).code == ExitCode::kUsage);
  }
}

TEST_CASE("The options are checked before anything connects", "[cli]") {
  SECTION("a timeout that is not a positive number") {
    const Run run = sbus_cli({"ping", "A", "--timeout", "-1", "--broker", "amqp://127.0.0.1:1/"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(contains(run.err, "--timeout must be a positive number of seconds"));
  }
  SECTION("a broker URI of another scheme") {
    const Run run = sbus_cli({"ping", "A", "--broker", "http://127.0.0.1:1/"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(contains(run.err, "not an AMQP URI"));
  }
  SECTION("no broker") {
    CHECK(contains(sbus_cli({"ping", "A"}).err, "give --config FILE or at least one --broker URI"));
  }
  SECTION("--tls-cert without --tls-key") {
    const Run run = sbus_cli({"ping", "A", "--broker", "amqp://127.0.0.1:1/", "--tls-cert", "c.pem"});
    CHECK(run.code == ExitCode::kUsage);
    CHECK(contains(run.err, "--tls-cert and --tls-key go together"));
  }
}

TEST_CASE("A verb that signs needs the secret and says what it signs, and ping and errors list do not", "[cli]") {
  sbus::cli::CommandLine line;
  line.brokers = {"amqp://127.0.0.1:1/"};
  SECTION("verbs that sign") {
    for (const auto& [name, says] :
         std::vector<std::pair<std::string, std::string>>{{"call", "to sign calls"},
                                                          {"send", "to sign calls"},
                                                          {"stats", "to sign calls"},
                                                          {"errors requeue", "to sign the requeued messages"}}) {
      INFO(name);
      const Verb& verb = verb_named(name);
      CHECK(verb.needs == sbus::cli::Needs::kSecret);
      std::ostringstream err;
      std::streambuf* const old_err = std::cerr.rdbuf(err.rdbuf());
      sbus::SenderOptions options;
      const auto failed = sbus::cli::build_sender_options(line, verb, &options);
      std::cerr.rdbuf(old_err);
      CHECK(failed == ExitCode::kUsage);
      CHECK(contains(err.str(), "sbus: give --secret-file (or --config) " + says));
    }
  }
  SECTION("verbs that do not") {
    for (const std::string name : {"ping", "errors list"}) {
      INFO(name);
      sbus::SenderOptions options;
      CHECK_FALSE(sbus::cli::build_sender_options(line, verb_named(name), &options));
      CHECK(options.brokers == line.brokers);
    }
  }
}

TEST_CASE("A verb is found by its words, the longest name first, and its operands counted from its row", "[cli]") {
  CHECK(sbus::cli::find_verb("call", {"A.B.C", "[]"})->name == "call");
  CHECK(sbus::cli::find_verb("errors", {"list", "NODE"})->name == "errors list");
  CHECK(sbus::cli::find_verb("errors", {"requeue"})->name == "errors requeue");
  CHECK(sbus::cli::find_verb("errors", {"NODE"}) == nullptr);
  CHECK(sbus::cli::find_verb("halp", {}) == nullptr);

  const auto call = sbus::cli::operand_count("NODE.CATEGORY.SERVICE 'JSON'");
  CHECK(call.least == 2);
  CHECK(call.most == 2);
  const auto optional = sbus::cli::operand_count("NODE [QUEUE]");
  CHECK(optional.least == 1);
  CHECK(optional.most == 2);
  const auto any = sbus::cli::operand_count("[VERB...]");
  CHECK(any.least == 0);
  CHECK(any.most == SIZE_MAX);
}

TEST_CASE("Every verb's row is complete: a summary, a function, and what it signs when it needs the secret", "[cli]") {
  for (const Verb& verb : sbus::cli::verbs()) {
    INFO(verb.name);
    CHECK_FALSE(verb.summary.empty());
    CHECK(verb.run != nullptr);
    CHECK((verb.needs == sbus::cli::Needs::kSecret) == !verb.signs.empty());
  }
}

TEST_CASE("What went wrong in the sender decides the exit code", "[cli]") {
  using Kind = sbus::SenderError::Kind;
  const auto code_for = [](Kind kind) { return sbus::cli::exit_code_for(sbus::SenderError(kind, "x")); };
  CHECK(code_for(Kind::kAddress) == ExitCode::kUsage);
  SECTION("a blocked broker is a timeout: the call was sent and may still run") {
    CHECK(code_for(Kind::kTimeout) == ExitCode::kTimeout);
    CHECK(code_for(Kind::kBlocked) == ExitCode::kTimeout);
  }
  SECTION("a refusal by the broker, or a bad answer, is a service error") {
    CHECK(code_for(Kind::kProtocol) == ExitCode::kServiceError);
    CHECK(code_for(Kind::kUnroutable) == ExitCode::kServiceError);
    CHECK(code_for(Kind::kPublish) == ExitCode::kServiceError);
  }
  SECTION("no connection is unreachable") {
    CHECK(code_for(Kind::kConnect) == ExitCode::kUnreachable);
    CHECK(code_for(Kind::kConnectionLost) == ExitCode::kUnreachable);
  }
}
