#include "config/checker.hpp"

#include <algorithm>
#include <sstream>

namespace sbus {

void Checker::problem(const YAML::Node& where, const std::string& key, const std::string& what) {
  // An absent key looked up on a const map has no mark at all.
  const bool has_line = where.IsDefined() && !where.Mark().is_null();
  problem_at(has_line ? where.Mark().line + 1 : 0, key, what);
}

void Checker::problem_at(int line, const std::string& key, const std::string& what) {
  std::ostringstream out;
  out << file_;
  if (line > 0) out << ':' << line;
  out << ": ";
  if (!key.empty()) out << key << ": ";
  out << what;
  problems_.push_back(out.str());
}

void Checker::warning(const YAML::Node& where, const std::string& key, const std::string& what) {
  const std::size_t before = problems_.size();
  problem(where, key, what);
  warnings_.push_back(std::move(problems_.back()));
  problems_.resize(before);
}

bool Checker::scalar(const YAML::Node& node, const std::string& key, std::string* out) {
  if (!node.IsScalar()) {
    problem(node, key, "must be a string");
    return false;
  }
  *out = node.Scalar();
  return true;
}

bool Checker::boolean(const YAML::Node& node, const std::string& key, bool* out) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    problem(node, key, "must be true or false");
    return false;
  }
  *out = value;
  return true;
}

bool Checker::in_range(const YAML::Node& node, const std::string& key, long long min, long long max, long long* out) {
  long long value = 0;
  if (!node.IsScalar() || !YAML::convert<long long>::decode(node, value)) {
    problem(node, key, "must be an integer");
    return false;
  }
  if (value < min || value > max) {
    problem(node, key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return false;
  }
  *out = value;
  return true;
}

bool Checker::seconds(const YAML::Node& node, const std::string& key, int max, int* out_ms) {
  double value = 0;
  if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || value < 0 || value > max) {
    problem(node, key, "must be a number of seconds between 0 and " + std::to_string(max));
    return false;
  }
  *out_ms = static_cast<int>(value * 1000);
  return true;
}

void Checker::unknown_keys(const YAML::Node& map, const std::string& prefix, std::span<const std::string> known) {
  for (const auto& entry : map) {
    const std::string key = entry.first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) problem(entry.first, prefix + key, "unknown key");
  }
}

}  // namespace sbus
