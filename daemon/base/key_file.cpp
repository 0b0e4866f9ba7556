#include "base/key_file.hpp"

#include <fcntl.h>
#include <grp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sbus {
namespace {

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::optional<gid_t> key_group_id() {
  group entry{};
  group* found = nullptr;
  char buffer[4096];
  if (getgrnam_r(kKeyFileGroup, &entry, buffer, sizeof(buffer), &found) != 0 || found == nullptr) return std::nullopt;
  return found->gr_gid;
}

}  // namespace

std::string key_file_problem(const std::string& kind, const std::string& path, const struct stat& info, uid_t reader,
                             std::optional<gid_t> key_group) {
  const std::string file = kind + " " + path;
  if (!S_ISREG(info.st_mode)) {
    const char* type = S_ISFIFO(info.st_mode)   ? "a FIFO"
                       : S_ISDIR(info.st_mode)  ? "a directory"
                       : S_ISCHR(info.st_mode)  ? "a character device"
                       : S_ISBLK(info.st_mode)  ? "a block device"
                       : S_ISSOCK(info.st_mode) ? "a socket"
                                                : "not a regular file";
    return file + " is " + type + ", not a regular file";
  }
  if (info.st_size < 0 || static_cast<std::size_t>(info.st_size) > kMaxKeyFileBytes) {
    return file + " is " + std::to_string(info.st_size) + " bytes, more than the " + std::to_string(kMaxKeyFileBytes) +
           " a key file may hold";
  }
  const mode_t mode = info.st_mode & 07777;
  // root:sbus first: root reads such a file too (`sbusd --check` run by an
  // operator), and for root it is its own.
  if (info.st_uid == 0 && key_group && info.st_gid == *key_group) {
    if ((mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0) {
      return file + " (root:" + kKeyFileGroup + ") has mode " + octal_mode(mode) +
             ": only the group's read bit may be set; chmod 640 it";
    }
    return {};
  }
  if (info.st_uid == reader) {
    if ((mode & (S_IRWXG | S_IRWXO)) != 0) {
      return file + " has mode " + octal_mode(mode) +
             ": readable by group or others; chmod 600 it (or chown root:" + kKeyFileGroup + " and chmod 640)";
    }
    return {};
  }
  return file + " is owned by uid " + std::to_string(info.st_uid) + " (gid " + std::to_string(info.st_gid) +
         "), not by this user (uid " + std::to_string(reader) + ") nor root:" + kKeyFileGroup + "; chown it";
}

bool read_key_file(const std::string& kind, const std::string& path, std::string* content, std::string* error) {
  const std::string file = kind + " " + path;
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    *error = "cannot read " + file + ": " + std::strerror(errno);
    return false;
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    *error = "cannot read " + file + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  // The group is looked up only where it can matter, a file of root's with
  // a group other than root's: a lookup that misses /etc/group loads the
  // next NSS module (libnss_systemd, 320 kB of the supervisor's RSS).
  const std::optional<gid_t> key_group = info.st_uid == 0 && info.st_gid != 0 ? key_group_id() : std::nullopt;
  if (std::string problem = key_file_problem(kind, path, info, ::geteuid(), key_group); !problem.empty()) {
    *error = std::move(problem);
    ::close(fd);
    return false;
  }
  // One byte more than allowed: a file that grew since fstat is noticed.
  std::string text(kMaxKeyFileBytes + 1, '\0');
  std::size_t filled = 0;
  while (filled < text.size()) {
    const ssize_t n = ::read(fd, text.data() + filled, text.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "cannot read " + file + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  ::close(fd);
  if (filled > kMaxKeyFileBytes) {
    *error = file + " is more than the " + std::to_string(kMaxKeyFileBytes) + " bytes a key file may hold";
    return false;
  }
  text.resize(filled);
  *content = std::move(text);
  return true;
}

}  // namespace sbus
