// sbus completion bash: the bash completion of sbus and sbusd, written from
// the tables (verbs, options), so that it never lists a verb or option that
// is not there. CMake installs its output as
// share/bash-completion/completions/{sbus,sbusd}.
#include <boost/program_options.hpp>

#include <set>
#include <string>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {
namespace {

// The options that take a file name: completed with files.
const std::set<std::string> kFileOptions = {"--config", "-c", "--secret-file", "--tls-ca", "--tls-cert", "--tls-key"};

// "call send ... errors help": each verb's first word once.
std::string first_words() {
  std::string words;
  std::set<std::string> seen;
  for (const Verb& verb : verbs()) {
    const std::string first(verb.name.substr(0, verb.name.find(' ')));
    if (seen.insert(first).second) words += (words.empty() ? "" : " ") + first;
  }
  return words;
}

// The second words of the verbs whose name has two, by first word: a case
// of the script ("errors) words='list requeue';;").
std::string second_word_cases() {
  std::string cases;
  for (const Verb& verb : verbs()) {
    const std::size_t space = verb.name.find(' ');
    if (space == std::string_view::npos) continue;
    std::string words;
    for (const Verb* same : verbs_named(verb.name.substr(0, space))) {
      words += (words.empty() ? "" : " ") + std::string(same->name.substr(space + 1));
    }
    const std::string line = "      " + std::string(verb.name.substr(0, space)) + ") words='" + words + "';;\n";
    if (cases.find(line) == std::string::npos) cases += line;
  }
  return cases;
}

std::string options_and_files(std::string* file_options) {
  CommandLine unused;  // the description binds its values to one
  const boost::program_options::options_description described = cli_options(&unused);
  std::string options;
  for (const auto& option : described.options()) {
    const std::string name = "--" + option->long_name();
    options += (options.empty() ? "" : " ") + name;
    if (kFileOptions.count(name) != 0) *file_options += (file_options->empty() ? "" : "|") + name;
  }
  return options;
}

std::string bash_script() {
  std::string file_options;
  const std::string options = options_and_files(&file_options);
  return "# bash completion for sbus and sbusd, written by `sbus completion bash`.\n"
         "_sbus() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words=''\n"
         "  COMPREPLY=()\n"
         "  case $prev in\n"
         "    " +
         file_options +
         "|-c) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n"
         "    --token) COMPREPLY=($(compgen -W 'compat hmac-sha256 hmac-sha256-v2' -- \"$cur\")); return;;\n"
         "  esac\n"
         "  if [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W '" +
         options +
         " -c -b -V -h' -- \"$cur\")); return\n"
         "  fi\n"
         "  if ((COMP_CWORD == 1)); then\n"
         "    COMPREPLY=($(compgen -W '" +
         first_words() +
         "' -- \"$cur\")); return\n"
         "  fi\n"
         "  if ((COMP_CWORD == 2)); then\n"
         "    case ${COMP_WORDS[1]} in\n" +
         second_word_cases() + "      help) words='" + first_words() +
         "';;\n"
         "      completion) words='bash';;\n"
         "    esac\n"
         "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "  fi\n"
         "}\n"
         "complete -F _sbus sbus\n"
         "# sbusd's options as its --help lists them.\n"
         "_sbusd() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "  COMPREPLY=()\n"
         "  case $prev in\n"
         "    --config|-c|--secret-file) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n"
         "    --plugin-dir) COMPREPLY=($(compgen -d -- \"$cur\")); return;;\n"
         "  esac\n"
         "  local options\n"
         "  options=$(\"${COMP_WORDS[0]}\" --help 2>/dev/null | grep -oE -- '--[a-z][a-z-]*' | sort -u)\n"
         "  COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))\n"
         "}\n"
         "complete -F _sbusd sbusd\n";
}

}  // namespace

ExitCode run_completion(const Invocation& invocation) {
  if (invocation.operands[0] != "bash") {
    return invocation.out.fail(ExitCode::kUsage, "usage", "completion: only bash, not " + invocation.operands[0]);
  }
  invocation.out.result(JsonObject().text("shell", "bash").text("script", bash_script()), bash_script());
  return ExitCode::kOk;
}

}  // namespace sbus::cli
