// What a reload compares to tell a plugin file that changed: its content.
//
// Each plugin file of a config is read whole and stamped with its size and
// a hash of its bytes, so that a file rewritten with other bytes counts as
// changed however its modification time goes (a copy that keeps the time,
// a clock set back), and one only touched or installed again with the same
// bytes does not (its workers stay untouched). The hash is std::hash: it
// is compared only within one supervisor process. Called by the supervisor
// at start and at each reload; it reads files and never loads them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace sbus {

struct PluginStamp {
  off_t size = 0;
  std::uint64_t content = 0;  // std::hash of the bytes

  bool operator==(const PluginStamp&) const = default;
};

// Plugin files by path. A file that cannot be read has no entry (its
// worker then says why, in the check or when it loads it).
using PluginStamps = std::map<std::string, PluginStamp>;

// The plugin files of `config`, each stamped as it is on disk now.
PluginStamps stamp_plugins(const Config& config);

// The paths whose stamp differs between `before` and `after`, or that only
// one of them has, in order.
std::vector<std::string> changed_plugins(const PluginStamps& before, const PluginStamps& after);

}  // namespace sbus
