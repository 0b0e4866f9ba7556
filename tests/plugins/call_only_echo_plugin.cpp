// A plugin whose "echo" answers calls and serves no messages, as test.so's
// echo did before it served both: a config that sends messages to it
// (`kind: message`) must be refused by the check, and a worker that finds
// it anyway must leave the service unavailable, never ack its messages
// into nothing.
#include <sbus/plugin.hpp>

namespace {

class CallOnlyEchoService : public sbus::Service {
 public:
  void on_call(const sbus::Request& request, sbus::Response& response) override { response.send(request.params()); }
};

}  // namespace

SBUS_PLUGIN("callonly", SBUS_SERVICE("echo", CallOnlyEchoService, sbus::Kind::kCall))
