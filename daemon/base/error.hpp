// The exceptions sbus throws for failures of setup: config, connect, login,
// declare and plugin load. Each names the operation, the subject and the
// library's own detail. What happens to a single message is never an
// exception: see worker/dispatch.hpp.
#pragma once

#include <stdexcept>
#include <string>

namespace sbus {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failure of rabbitmq-c or of the broker (connect, login, a refused
// declare, a closed channel).
class AmqpError : public Error {
 public:
  using Error::Error;
};

// No TCP connection to the broker at all (refused, unreachable, timed out):
// the broker is down or cut off, as opposed to one that answers and refuses.
class BrokerUnreachable : public AmqpError {
 public:
  using AmqpError::AmqpError;
};

// A plugin that cannot be loaded: missing file, missing symbol, ABI mismatch,
// unknown service.
class PluginError : public Error {
 public:
  using Error::Error;
};

}  // namespace sbus
