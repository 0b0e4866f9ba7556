// docs/examples/shop_client.cpp
// Calls the shop plugin's services on NODE (docs/examples/shop_plugin.cpp).
//   shop_client NODE BROKER_URI SECRET_FILE
#include <sbus/sender.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: shop_client NODE BROKER_URI SECRET_FILE\n";
    return 2;
  }
  const std::string node = argv[1];
  sbus::SenderOptions options;
  options.brokers = {argv[2]};
  std::ifstream secret(argv[3]);
  if (!std::getline(secret, options.secret)) {
    std::cerr << "shop_client: cannot read " << argv[3] << "\n";
    return 2;
  }

  try {
    sbus::Sender sender(options);  // connects on first use
    std::cout << "ping: " << (sender.ping(node, 3s) ? "PONG" : "no answer") << "\n";

    // A call waits for its reply.
    const sbus::CallResult price = sender.call(node + ".shop.price", R"({"item": "apple", "count": 3})", 10s);
    std::cout << "price: " << price.message << "\n";

    // An error reply is a CallResult too, with the service's code.
    const sbus::CallResult error = sender.call(node + ".shop.price", R"({"item": "durian", "count": 1})", 10s);
    if (!error.ok()) std::cout << "error: " << error.error_code << ": " << error.message << "\n";

    // A message returns once the broker has confirmed it.
    sender.send(node + ".shop.order", R"({"item": "pear", "count": 2})");
    std::cout << "order sent\n";

    // Calls in flight together on the one connection; replies come in any order.
    std::map<std::string, int> count_of;  // by call id
    for (int count = 1; count <= 3; ++count) {
      const std::string params = R"({"item": "apple", "count": )" + std::to_string(count) + "}";
      count_of[sender.call_async(node + ".shop.price", params)] = count;
    }
    std::map<int, std::string> totals;
    while (sender.in_flight() > 0) {
      const std::optional<sbus::AsyncReply> reply = sender.next_reply(10s);
      if (!reply) {
        std::cerr << "shop_client: no reply within 10 s\n";
        return 3;
      }
      totals[count_of[reply->id]] = reply->result.message;
    }
    for (const auto& [count, message] : totals) std::cout << "async " << count << ": " << message << "\n";
  } catch (const sbus::SenderError& e) {
    // Transport failures: no broker, no such node (kUnroutable), a timeout...
    std::cerr << "shop_client: " << e.what() << "\n";
    return e.kind() == sbus::SenderError::Kind::kTimeout ? 3 : 4;
  }
  return 0;
}
