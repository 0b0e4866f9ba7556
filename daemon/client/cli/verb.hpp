// The verbs of `sbus`, one row each: `sbus --help`, `sbus VERB --help`, the
// checks of the operands and of the secret, and the dispatch all read this
// table, and docs/cli.md lists it (tests/unit/cli_docs_test checks that they
// agree). A new verb is a new row and the function that runs it, which
// prints through its Invocation's Output (output.hpp): that gives it --json.
#pragma once

#include <sbus/sender.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "client/cli/command_line.hpp"
#include "client/cli/exit_code.hpp"
#include "client/cli/output.hpp"

namespace sbus::cli {

// What a verb needs before it runs.
enum class Needs {
  kNothing,  // no broker: runs at once (help)
  kBroker,   // a broker; the secret if given (ping, errors list)
  kSecret,   // a broker and the secret, to sign what it sends
};

// What a verb runs with: its operands (the words after the verb's name) and
// the sender's options, checked. `sender` is empty for Needs::kNothing.
struct Invocation {
  const CommandLine& line;
  const Output& out;  // where the verb prints, text or --json
  std::vector<std::string> operands;
  SenderOptions sender;
  std::chrono::milliseconds timeout;
};

struct Verb {
  std::string_view name;      // one or two words: "call", "errors list"
  std::string_view operands;  // "NODE.CATEGORY.SERVICE 'JSON'"; "[X]" optional, "[X...]" any number
  Needs needs;
  std::string_view signs;    // with kSecret: what the secret signs, said when it is missing
  std::string_view summary;  // one line, plain text
  ExitCode (*run)(const Invocation&);
};

// Every verb, in the order `sbus --help` lists them.
std::span<const Verb> verbs();

// How many operands a verb's `operands` text asks for: the words outside
// brackets, and up to those in brackets ("..." inside: any number).
struct OperandCount {
  std::size_t least = 0;
  std::size_t most = 0;  // SIZE_MAX: no limit
};
OperandCount operand_count(std::string_view operands);

// The verb that `command` and the words after it name (the longest name
// that matches word by word); nullptr when none does.
const Verb* find_verb(std::string_view command, const std::vector<std::string>& words);

// The verbs whose first word is `command` ("errors": errors list, errors
// requeue).
std::vector<const Verb*> verbs_named(std::string_view command);

// How many words a verb's name has: 1 for "call", 2 for "errors list".
std::size_t name_words(const Verb& verb);

}  // namespace sbus::cli
