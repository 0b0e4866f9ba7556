// The table of verbs (verb.hpp): a new verb is a row here, the function that
// runs it (runners.hpp), and its row in docs/cli.md.
#include <algorithm>
#include <array>
#include <cstdint>

#include "client/cli/runners.hpp"
#include "client/cli/verb.hpp"

namespace sbus::cli {
namespace {

constexpr std::array kVerbs = {
    Verb{.name = "call",
         .operands = "NODE.CATEGORY.SERVICE 'JSON'",
         .needs = Needs::kSecret,
         .signs = "calls",
         .summary = "call a service, print its result",
         .run = &run_call},
    Verb{.name = "send",
         .operands = "NODE.CATEGORY.SERVICE 'JSON'",
         .needs = Needs::kSecret,
         .signs = "calls",
         .summary = "send a message to a message service",
         .run = &run_send},
    Verb{.name = "publish",
         .operands = "TOPIC 'JSON'",
         .needs = Needs::kSecret,
         .signs = "events",
         .summary = "publish an event to the services subscribed to TOPIC",
         .run = &run_publish},
    Verb{.name = "ping",
         .operands = "NODE",
         .needs = Needs::kBroker,
         .signs = "",
         .summary = "exit 0 when NODE answers",
         .run = &run_ping},
    Verb{.name = "stats",
         .operands = "NODE",
         .needs = Needs::kSecret,
         .signs = "calls",
         .summary = "what NODE's agent has served, per service",
         .run = &run_stats},
    Verb{.name = "services",
         .operands = "NODE",
         .needs = Needs::kSecret,
         .signs = "calls",
         .summary = "what NODE serves: each service's kind, plugin and state",
         .run = &run_services},
    Verb{.name = "discover",
         .operands = "",
         .needs = Needs::kBroker,
         .signs = "",
         .summary = "list every agent on the bus and what it serves",
         .run = &run_discover},
    Verb{.name = "errors list",
         .operands = "NODE",
         .needs = Needs::kBroker,
         .signs = "",
         .summary = "one line per message in NODE.error",
         .run = &run_errors_list},
    Verb{.name = "errors requeue",
         .operands = "NODE",
         .needs = Needs::kSecret,
         .signs = "the requeued messages",
         .summary = "move the messages in NODE.error back to NODE",
         .run = &run_errors_requeue},
    Verb{.name = "completion",
         .operands = "SHELL",
         .needs = Needs::kNothing,
         .signs = "",
         .summary = "print the completion script of sbus and sbusd (bash)",
         .run = &run_completion},
    Verb{.name = "help",
         .operands = "[VERB...]",
         .needs = Needs::kNothing,
         .signs = "",
         .summary = "print this help, or a verb's",
         .run = &run_help},
};

// The words of `text`, split at spaces.
std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = std::min(text.find(' ', start), text.size());
    if (end > start) words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

}  // namespace

std::span<const Verb> verbs() {
  return kVerbs;
}

std::size_t name_words(const Verb& verb) {
  return words_of(verb.name).size();
}

OperandCount operand_count(std::string_view operands) {
  OperandCount count;
  for (std::string_view word : words_of(operands)) {
    if (word.front() != '[') {
      ++count.least;
      ++count.most;
    } else if (word.find("...") != std::string_view::npos) {
      count.most = SIZE_MAX;
    } else if (count.most != SIZE_MAX) {
      ++count.most;
    }
  }
  return count;
}

const Verb* find_verb(std::string_view command, const std::vector<std::string>& words) {
  const Verb* found = nullptr;
  for (const Verb& verb : kVerbs) {
    const std::vector<std::string_view> name = words_of(verb.name);
    if (name.size() - 1 > words.size() || name[0] != command) continue;
    bool matches = true;
    for (std::size_t i = 1; i < name.size(); ++i) matches = matches && name[i] == words[i - 1];
    if (matches && (found == nullptr || name.size() > name_words(*found))) found = &verb;
  }
  return found;
}

std::vector<const Verb*> verbs_named(std::string_view command) {
  std::vector<const Verb*> named;
  for (const Verb& verb : kVerbs) {
    if (words_of(verb.name)[0] == command) named.push_back(&verb);
  }
  return named;
}

}  // namespace sbus::cli
