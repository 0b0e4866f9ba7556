// sbus completion bash: the bash completion of sbus and sbusd, written from
// the tables (verbs, options), so that it never lists a verb or option that
// is not there. CMake installs its output as
// share/bash-completion/completions/{sbus,sbusd}.
#include <boost/program_options.hpp>

#include <algorithm>
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

// The case of the script that says where a node name goes: "ping:2|...)
// kind=node;;" for the verbs whose first operand is NODE, "call:2|...)
// kind=address;;" for NODE.CATEGORY.SERVICE, keyed by the verb's first
// word and the operand's word number.
std::string node_operand_cases() {
  std::string nodes;
  std::string addresses;
  for (const Verb& verb : verbs()) {
    const std::string_view operand = verb.operands.substr(0, verb.operands.find(' '));
    std::string* list = operand == "NODE" ? &nodes : operand == "NODE.CATEGORY.SERVICE" ? &addresses : nullptr;
    if (list == nullptr) continue;
    const std::size_t position = 2 + static_cast<std::size_t>(std::count(verb.name.begin(), verb.name.end(), ' '));
    const std::string key = std::string(verb.name.substr(0, verb.name.find(' '))) + ":" + std::to_string(position);
    if (("|" + *list + "|").find("|" + key + "|") == std::string::npos) *list += (list->empty() ? "" : "|") + key;
  }
  std::string cases;
  if (!nodes.empty()) cases += "    " + nodes + ") kind=node;;\n";
  if (!addresses.empty()) cases += "    " + addresses + ") kind=address;;\n";
  return cases;
}

// _sbus_nodes KIND: the node names (KIND node) or service addresses (KIND
// address) that `sbus discover --json` finds through the brokers of the
// command line being completed (--config, --broker and the like as typed;
// without any, /etc/sbus/sbusd.yaml when it can be read). Cached for a
// minute per set of options; discover is killed after 3 s, so that a slow or
// absent broker never holds the shell. Names with spaces, quotes or
// backslashes are left out.
constexpr std::string_view kNodesFunction = R"sh(_sbus_nodes() {
  local args=() i word
  for ((i = 2; i < ${#COMP_WORDS[@]}; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      --config|-c|--broker|-b|--exchange|--secret-file|--caller|--key-file|--tls-ca|--tls-cert|--tls-key)
        ((i + 1 < ${#COMP_WORDS[@]} && i + 1 != COMP_CWORD)) && args+=("$word" "${COMP_WORDS[i+1]/#\~/$HOME}")
        ((i++));;
      --tls-insecure|--legacy-short-secret) args+=("$word");;
    esac
  done
  if ((${#args[@]} == 0)); then
    [[ -r /etc/sbus/sbusd.yaml ]] || return 0
    args=(--config /etc/sbus/sbusd.yaml)
  fi
  local cache
  cache=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}}/sbus-completion-$UID-$(printf '%s\n' "${args[@]}" | cksum | cut -d' ' -f1)
  if [[ ! -f $cache || ! -O $cache || -n $(find "$cache" -mmin +1 2>/dev/null) ]]; then
    local fresh node='^\{"node":"([^"\\[:space:]]+)"' name='"name":"([^"\\[:space:]]+)"(.*)'
    fresh=$(mktemp "$cache.XXXXXX" 2>/dev/null) || return 0
    timeout 3 "${COMP_WORDS[0]}" discover --json --wait 1 --timeout 1 "${args[@]}" </dev/null 2>/dev/null |
      while IFS= read -r word; do
        [[ $word =~ $node ]] || continue
        i=${BASH_REMATCH[1]}
        echo "node $i"
        while [[ $word =~ $name ]]; do
          echo "address $i.${BASH_REMATCH[1]}"
          word=${BASH_REMATCH[2]}
        done
      done | sort -u >"$fresh"
    mv -f "$fresh" "$cache"
  fi
  while read -r word i; do [[ $word == "$1" ]] && echo "$i"; done <"$cache"
}
)sh";

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
  return "# bash completion for sbus and sbusd, written by `sbus completion bash`.\n" + std::string(kNodesFunction) +
         "_sbus() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} words=''\n"
         "  COMPREPLY=()\n"
         "  case $prev in\n"
         "    " +
         file_options +
         "|-c) COMPREPLY=($(compgen -f -- \"$cur\")); return;;\n"
         "    --token) COMPREPLY=($(compgen -W 'compat hmac-sha256 hmac-sha256-v2' -- \"$cur\")); return;;\n"
         "    --ping) COMPREPLY=($(compgen -W \"$(_sbus_nodes node)\" -- \"$cur\")); return;;\n"
         "  esac\n"
         "  if [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W '" +
         options +
         " -c -b -V -h' -- \"$cur\")); return\n"
         "  fi\n"
         "  local kind=''\n"
         "  case ${COMP_WORDS[1]}:$COMP_CWORD in\n" +
         node_operand_cases() +
         "  esac\n"
         "  if [[ -n $kind ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$(_sbus_nodes $kind)\" -- \"$cur\")); return\n"
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
