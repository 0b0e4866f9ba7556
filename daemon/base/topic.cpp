#include "base/topic.hpp"

#include <vector>

namespace sbus {
namespace {

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::vector<std::string_view> words_of(std::string_view text) {
  std::vector<std::string_view> words;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    words.push_back(text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) return words;
    start = dot + 1;
  }
}

std::string problem_of(std::string_view text, bool pattern) {
  const char* what = pattern ? "topic pattern" : "topic";
  if (text.empty()) return std::string("empty ") + what;
  if (text.size() > kMaxTopicBytes) {
    return std::string(what) + " of " + std::to_string(text.size()) + " bytes is over the limit of " +
           std::to_string(kMaxTopicBytes);
  }
  for (std::string_view word : words_of(text)) {
    if (word.empty())
      return std::string(what) + " '" + std::string(text) + "' has an empty word (two dots, or a dot at an end)";
    if (pattern && (word == "*" || word == "#")) continue;
    for (char c : word) {
      if (word_char(c)) continue;
      if (!pattern && (c == '*' || c == '#')) {
        return "topic '" + std::string(text) +
               "': '*' and '#' are for subscribing (topics: in sbusd's YAML); "
               "an event is published to one topic";
      }
      return std::string(what) + " '" + std::string(text) + "': the word '" + std::string(word) +
             "' may hold letters, digits, '_' and '-' only" + (pattern ? ", or be '*' or '#' alone" : "");
    }
  }
  return {};
}

bool match_words(const std::vector<std::string_view>& pattern, std::size_t p,
                 const std::vector<std::string_view>& topic, std::size_t t) {
  if (p == pattern.size()) return t == topic.size();
  if (pattern[p] == "#") {
    for (std::size_t skip = t; skip <= topic.size(); ++skip) {
      if (match_words(pattern, p + 1, topic, skip)) return true;
    }
    return false;
  }
  if (t == topic.size()) return false;
  if (pattern[p] != "*" && pattern[p] != topic[t]) return false;
  return match_words(pattern, p + 1, topic, t + 1);
}

}  // namespace

std::string topic_problem(std::string_view topic) {
  return problem_of(topic, false);
}

std::string topic_pattern_problem(std::string_view pattern) {
  return problem_of(pattern, true);
}

bool topic_matches(std::string_view pattern, std::string_view topic) {
  return match_words(words_of(pattern), 0, words_of(topic), 0);
}

}  // namespace sbus
