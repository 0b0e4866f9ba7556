// Whether a TCP port accepts connections: a connect and a close, nothing
// sent. Cheap enough to ask a few times a second while a broker is down.
#pragma once

#include <chrono>
#include <string>

namespace sbus {

// True when some address of `host` accepts a TCP connection on `port`
// within `timeout`.
bool port_accepts(const std::string& host, int port, std::chrono::milliseconds timeout);

// The same connect: 0 when some address accepted, else the errno of the
// last address tried (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH ...;
// EADDRNOTAVAIL when `host` does not resolve).
int connect_error(const std::string& host, int port, std::chrono::milliseconds timeout);

}  // namespace sbus
