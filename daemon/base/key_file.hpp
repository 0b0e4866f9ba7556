// The rule every key file of sbus follows (the shared secret today; any key
// file added later reads through read_key_file() too): a regular file of at
// most kMaxKeyFileBytes that only its owner and sbusd can read, either
//   - owned by the user reading it, mode 0600 or narrower (nothing for group
//     or others), or
//   - owned by root, group `sbus`, mode 0640 or narrower (the group may only
//     read, others nothing),
// so that an operator can keep the file root's while sbusd reads it through
// its group. Called by sbusd (start, reload, --check) and the sbus CLI, on
// any thread; reads nothing before the checks pass.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>

namespace sbus {

inline constexpr std::size_t kMaxKeyFileBytes = 4096;
inline constexpr const char* kKeyFileGroup = "sbus";

// Why a file with `info` fails the rule for a reader whose effective user
// is `reader`, given the gid of the group `sbus` (nullopt: no such group);
// empty when it passes. `kind` and `path` name the file in the sentence
// ("secret file /etc/sbus/secret is a FIFO, ...").
std::string key_file_problem(const std::string& kind, const std::string& path, const struct stat& info, uid_t reader,
                             std::optional<gid_t> key_group);

// Opens `path` without blocking (a FIFO is refused, never read), checks the
// rule above for this process's effective user, then reads it whole. False
// with a sentence naming the file and the reason in `error`.
bool read_key_file(const std::string& kind, const std::string& path, std::string* content, std::string* error);

}  // namespace sbus
