#include "bench_util.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace bench {

namespace fs = std::filesystem;

std::string self_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path().string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

sbus::SenderOptions sender_options(int port, const std::string& secret, const TlsFiles& tls) {
  sbus::SenderOptions options;
  const std::string where = (tls.enabled() ? "amqps://guest:guest@localhost:" : "amqp://guest:guest@127.0.0.1:") +
                            std::to_string(port) + "/%2f";
  options.brokers = {where};
  options.secret = secret;
  options.tls_ca_file = tls.ca_file;
  options.tls_cert_file = tls.cert_file;
  options.tls_key_file = tls.key_file;
  return options;
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string large_params(std::size_t size) {
  return "[\"" + std::string(size - 4, 'x') + "\"]";
}

}  // namespace bench
