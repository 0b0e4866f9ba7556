#include "worker/plugin_image.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "base/error.hpp"

namespace sbus {

namespace {

// A file descriptor closed with its owner.
class OwnedFd {
 public:
  explicit OwnedFd(int fd = -1) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

// The copy and the library loaded from it. The memfd stays open for the
// library's life: glibc knows a library by the name it was opened with, and
// a closed /proc/self/fd/N would be taken for the next copy that gets the
// same number. dlclose() may also leave a library loaded (one that defines
// a unique symbol, as libstdc++'s inline statics do): its fd then stays
// open for the life of the process, as its mapping does.
struct Image {
  ~Image() {
    if (!library.is_loaded()) return;
    library.unload();
    const std::string name = "/proc/self/fd/" + std::to_string(copy.get());
    if (void* still = dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
      dlclose(still);
      (void)copy.release();
    }
  }

  OwnedFd copy;
  boost::dll::shared_library library;
};

std::string errno_text() {
  return std::strerror(errno);
}

// A sealed memfd holding the bytes of `path`, or PluginError.
int copy_to_memory(const std::string& path) {
  const OwnedFd source(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (source.get() < 0) {
    if (errno == ENOENT) throw PluginError("plugin " + path + ": no such file");
    throw PluginError("plugin " + path + ": cannot open: " + errno_text());
  }
  // Named after the file: /proc/PID/maps then shows
  // "/memfd:sbus-copy:/usr/lib/sbus/plugins/math.so (deleted)" (a name
  // holds 249 bytes at most: the end of a longer path).
  std::string name = "sbus-copy:" + path;
  if (name.size() > 249) name = name.substr(name.size() - 249);
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw PluginError("plugin " + path + ": cannot make a private copy (memfd_create): " + errno_text());
  OwnedFd copy(fd);
  // To the end of the file as it is now: a file being written over may
  // grow or shrink meanwhile, and the loader then refuses what it reads.
  for (;;) {
    const ssize_t sent = ::sendfile(copy.get(), source.get(), nullptr, 1 << 20);
    if (sent == 0) break;
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) throw PluginError("plugin " + path + ": cannot copy: " + errno_text());
  }
  // Nobody (not another process through /proc) may change it any more.
  ::fcntl(copy.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return copy.release();
}

// dlerror()'s text names the copy: name the file instead.
std::string named_after(std::string detail, const std::string& copy, const std::string& path) {
  for (std::size_t at = detail.find(copy); at != std::string::npos; at = detail.find(copy, at + path.size())) {
    detail.replace(at, copy.size(), path);
  }
  return detail;
}

}  // namespace

std::shared_ptr<boost::dll::shared_library> load_plugin_image(const std::string& path, boost::dll::load_mode::type mode,
                                                              std::string* from_file) {
  auto image = std::make_shared<Image>();
  const int fd = copy_to_memory(path);
  image->copy.reset(fd);
  const std::string copy = "/proc/self/fd/" + std::to_string(fd);
  boost::dll::fs::error_code error;
  image->library.load(copy, mode, error);
  if (error) {
    // dlerror() says more than the error code (a missing dependency, a
    // symbol the plugin needs).
    const char* detail = dlerror();
    std::string why = named_after(detail ? detail : error.message(), copy, path);
    // A dependency found only through $ORIGIN in the plugin's RUNPATH,
    // which names /proc/self/fd for the copy: the file itself, as before.
    if (why.find("cannot open shared object file") != std::string::npos) {
      auto original = std::make_shared<boost::dll::shared_library>();
      original->load(path, mode, error);
      if (!error) {
        if (from_file != nullptr) *from_file = why;
        return original;
      }
    }
    throw PluginError("plugin " + path + ": cannot load: " + why);
  }
  // Shares the Image's ownership: the copy lives as long as the library.
  return std::shared_ptr<boost::dll::shared_library>(image, &image->library);
}

}  // namespace sbus
