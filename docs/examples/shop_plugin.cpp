// docs/examples/shop_plugin.cpp
// The shop plugin: an RPC service and a message service.
//   shop.price  (rpc)      {"item": ITEM, "count": N} -> {"item", "count", "total"};
//                          its options are its price list, ITEM: PRICE
//   shop.order  (message)  {"item": ITEM, "count": N}: prices the order by
//                          calling shop.price, then appends a line to the
//                          file of its option `file`
#define SBUS_PLUGIN_VERSION "1.4.2"  // before sbus/plugin.hpp: the version the plugin states
#include <sbus/log.hpp>
#include <sbus/plugin.hpp>
#include <sbus/sender.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

// The params both services take; false when they are not of that shape.
bool read_order(const rapidjson::Value& params, std::string* item, std::int64_t* count) {
  if (!params.IsObject() || !params.HasMember("item") || !params["item"].IsString() ||
      !params.HasMember("count") || !params["count"].IsInt64() || params["count"].GetInt64() < 1) {
    return false;
  }
  *item = params["item"].GetString();
  *count = params["count"].GetInt64();
  return true;
}

class PriceService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    context_ = &context;
    for (const auto& [item, price] : context.options) {
      char* end = nullptr;
      const double value = std::strtod(price.c_str(), &end);
      // An exception from start() keeps the service from starting; its text is logged.
      if (price.empty() || *end != '\0') throw std::runtime_error("option " + item + ": not a price: " + price);
      prices_[item] = value;
    }
    sbus::log_info(context, "serving " + std::to_string(prices_.size()) + " prices");
  }

  void on_call(const sbus::Request& request, sbus::Response& response) override {
    std::string item;
    std::int64_t count = 0;
    if (!read_order(request.params(), &item, &count)) {
      response.error("invalid_params", R"(shop.price takes {"item": ITEM, "count": N} with N >= 1)");
      return;
    }
    const auto price = prices_.find(item);
    if (price == prices_.end()) {
      // A code of the service's own: the caller reads it as CallResult::error_code.
      response.error("unknown_item", "no price for " + item);
      return;
    }
    if (sbus::log_enabled(*context_, sbus::LogLevel::kDebug)) {
      sbus::log_debug(*context_, "call " + request.id() + ": " + std::to_string(count) + " x " + item);
    }
    rapidjson::Document result(rapidjson::kObjectType);
    auto& allocator = result.GetAllocator();
    result.AddMember("item", rapidjson::Value(item.c_str(), allocator), allocator);
    result.AddMember("count", count, allocator);
    result.AddMember("total", price->second * static_cast<double>(count), allocator);
    response.send(result);
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;  // valid until stop() returns
  std::map<std::string, double> prices_;
};

class OrderService : public sbus::Service {
 public:
  void start(const sbus::ServiceContext& context) override {
    context_ = &context;
    const auto file = context.options.find("file");
    if (file == context.options.end()) throw std::runtime_error("shop.order needs options: {file: PATH}");
    path_ = file->second;
    // Connects on its first call, to this worker's broker first.
    sender_ = std::make_unique<sbus::Sender>(context.sender());
  }

  // An exception here makes sbusd retry the message, then move it to the
  // error queue: the order is not lost.
  void on_message(const sbus::Request& request) override {
    std::string item;
    std::int64_t count = 0;
    if (!read_order(request.params(), &item, &count)) {
      throw std::invalid_argument(R"(shop.order takes {"item": ITEM, "count": N} with N >= 1)");
    }
    rapidjson::StringBuffer params;
    rapidjson::Writer<rapidjson::StringBuffer> writer(params);
    request.params().Accept(writer);
    const sbus::CallResult price =
        sender_->call(context_->node + ".shop.price", params.GetString(), std::chrono::seconds(10));
    if (!price.ok()) throw std::runtime_error("shop.price: " + price.error_code + ": " + price.message);

    rapidjson::Document reply;
    reply.Parse(price.message.c_str());
    if (reply.HasParseError() || !reply.IsObject() || !reply.HasMember("total")) {
      throw std::runtime_error("shop.price answered " + price.message);
    }
    rapidjson::StringBuffer total;
    rapidjson::Writer<rapidjson::StringBuffer> total_writer(total);
    reply["total"].Accept(total_writer);
    const std::string line = std::to_string(count) + " x " + item + " = " + total.GetString();
    std::ofstream(path_, std::ios::app) << line << "\n";
    sbus::log_info(*context_, "order " + request.id() + ": " + line);
  }

 private:
  const sbus::ServiceContext* context_ = nullptr;
  std::string path_;
  std::unique_ptr<sbus::Sender> sender_;
};

}  // namespace

SBUS_PLUGIN("shop",
            SBUS_SERVICE("price", PriceService, sbus::Kind::kCall),
            SBUS_SERVICE("order", OrderService, sbus::Kind::kMessage))
