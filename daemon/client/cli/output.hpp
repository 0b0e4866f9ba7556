// What the verbs print, in one of two forms: text for a person (the
// default) or, with --json, JSON for scripts: one JSON document on stdout
// per run (one JSON line per item for a verb that streams), and every error
// and warning as one JSON line on stderr:
//   {"error":{"code":"unroutable","message":"...","exit":1,"exit_name":"service_error"}}
//   {"warning":{"message":"..."}}
// The exit code is the same in both forms (exit_code.hpp). A verb prints
// only through the Output of its Invocation, so a new verb has --json by
// construction: its errors through fail() and with_sender(), its result
// through result() or item(). Everything JSON is written by RapidJSON
// (json_value.hpp), so it stays valid whatever a service answers.
#pragma once

#include <sbus/sender.hpp>

#include <iostream>
#include <string>
#include <string_view>

#include "client/cli/exit_code.hpp"
#include "client/cli/json_value.hpp"

namespace sbus::cli {

class Output {
 public:
  // Text on std::cout and std::cerr.
  Output() : Output(false) {}
  explicit Output(bool json, std::ostream& out = std::cout, std::ostream& err = std::cerr)
      : json_(json), out_(&out), err_(&err) {}

  bool json() const { return json_; }

  // A verb's result: `text` as it is (give it its line breaks), or
  // `document` as one line.
  void result(const JsonObject& document, std::string_view text) const;
  // One item of a stream (one line of each): flushed at once.
  void item(const JsonObject& document, std::string_view text_line) const;
  // An error, on stderr: "sbus: MESSAGE" or the JSON error line; returns
  // `exit`. `code` says what went wrong in a word a script can test
  // ("usage", "unroutable", "timeout", or a service's error code).
  ExitCode fail(ExitCode exit, std::string_view code, std::string_view message) const;
  // The same with more members in the error object (the node, the broker).
  ExitCode fail(ExitCode exit, std::string_view code, std::string_view message, const JsonObject& more) const;
  // A SenderError, with its exit code (exit_code_for) and code (code_for).
  ExitCode fail(const SenderError& error, std::string_view context = {}) const;
  // Something a person should know that is no failure, on stderr.
  void warn(std::string_view message) const;
  // Text for a person on stderr (counts, progress): text form only.
  void note(std::string_view text) const;

  std::ostream& text_out() const { return *out_; }

 private:
  bool json_;
  std::ostream* out_;
  std::ostream* err_;
};

// The error object of fail(), for the tests and for verbs that collect
// several: {"code":..., "message":..., "exit":N, "exit_name":...}.
JsonObject error_object(ExitCode exit, std::string_view code, std::string_view message);

// `text` with line breaks, tabs and backslashes escaped, so that it takes
// one line of output.
std::string one_line(std::string_view text);

// Forged replies are dropped, never printed; says on stderr how many there
// were.
void warn_dropped(const Sender& sender, const Output& output);

}  // namespace sbus::cli
