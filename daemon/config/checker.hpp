// The problems of one config file, each a line "FILE:LINE: KEY: what", and
// the checks of a value's type that the keys' parsers share. The loader
// keeps going after a problem, so that one run reports them all.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace sbus {

class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  // A problem at the line of `where`; no line when `where` has none (a key
  // that is absent).
  void problem(const YAML::Node& where, const std::string& key, const std::string& what);
  // A problem at `line`; 0: no line ("FILE: KEY: what"), for what does not
  // come from the file (--broker, --secret-file). An empty key is left out.
  void problem_at(int line, const std::string& key, const std::string& what);
  // Not a problem, said beside them (the config is usable): same form.
  void warning(const YAML::Node& where, const std::string& key, const std::string& what);

  // Each check records a problem and returns false when the value does not
  // fit; `out` is written only when it fits.
  bool scalar(const YAML::Node& node, const std::string& key, std::string* out);
  bool boolean(const YAML::Node& node, const std::string& key, bool* out);
  // An integer in [min, max].
  template <typename T>
  bool integer(const YAML::Node& node, const std::string& key, long long min, long long max, T* out) {
    long long value = 0;
    if (!in_range(node, key, min, max, &value)) return false;
    *out = static_cast<T>(value);
    return true;
  }
  // Seconds in [0, max], fractions allowed (0.5 is half a second), kept as
  // milliseconds.
  bool seconds(const YAML::Node& node, const std::string& key, int max, int* out_ms);

  // One problem for each key of `map` not in `known`, named prefix + key
  // ("tls.colour", "services[1].colour").
  void unknown_keys(const YAML::Node& map, const std::string& prefix, std::span<const std::string> known);

  std::size_t count() const { return problems_.size(); }
  std::vector<std::string>& problems() { return problems_; }
  std::vector<std::string>& warnings() { return warnings_; }

 private:
  bool in_range(const YAML::Node& node, const std::string& key, long long min, long long max, long long* out);

  std::string file_;
  std::vector<std::string> problems_;
  std::vector<std::string> warnings_;
};

}  // namespace sbus
