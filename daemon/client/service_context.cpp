// The part of the SDK's ServiceContext (sbus/plugin.hpp) that lives in
// libsbus.so: a plugin calls it here, so that the Sender is made from the
// settings with this library's layout of SenderOptions, not the one the
// plugin was compiled with.
#include <sbus/plugin.hpp>
#include <sbus/sender.hpp>

namespace sbus {

Sender ServiceContext::sender() const {
  return Sender(sender_ ? *sender_ : SenderOptions{});
}

}  // namespace sbus
