// The address of sbusd's metrics endpoint (`metrics_listen`): HOST:PORT
// ("127.0.0.1:9464", "[::1]:9464", "localhost:9464") or a Unix socket path
// (absolute, or "unix:PATH"). Used by the metrics server to listen and by
// `sbusd --check` to say whether it could.
#pragma once

#include <string>

namespace sbus {

// A socket bound to `address` and listening (non-blocking, close-on-exec),
// or -1 with the reason in `error` ("cannot bind 127.0.0.1:9464: Address
// already in use"). A Unix socket file left by a process that is gone is
// replaced; one that a live process listens on is not.
int bind_listen(const std::string& address, std::string* error);

// The socket file of a Unix socket address, or empty for HOST:PORT: whoever
// bound it removes it once done.
std::string unix_socket_path(const std::string& address);

}  // namespace sbus
