#include "worker/peer_watch.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <iterator>
#include <random>
#include <sstream>

#include "base/error.hpp"
#include "base/log.hpp"

namespace sbus {

namespace {

// After a failed connection, the next try.
constexpr std::chrono::seconds kRetry{5};

std::string random_instance() {
  std::random_device device;
  std::ostringstream text;
  text << std::hex << device() << device();
  return text.str();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "?";
  return name;
}

std::vector<std::string> sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> minus(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "-" : out;
}

// What another agent says of itself, fit for one log line: printable
// ASCII, at most `limit` characters.
std::string printable(std::string_view text, std::size_t limit = 64) {
  std::string out;
  for (char c : text.substr(0, limit)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > limit) out += "...";
  return out;
}

}  // namespace

PeerWatch::PeerWatch(BrokerUri uri, ConnectOptions options, std::string exchange, std::string node,
                     std::vector<std::string> services)
    : uri_(std::move(uri)),
      options_(std::move(options)),
      exchange_(std::move(exchange)),
      node_(std::move(node)),
      services_(sorted(std::move(services))),
      instance_(random_instance()),
      queue_(node_ + ".sbus.agent." + instance_) {}

PeerWatch::~PeerWatch() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(pause_mutex_);
    stopping_ = true;
  }
  pause_cv_.notify_all();
  // Ends a read that waits for the next announcement.
  const int socket = socket_.load();
  if (socket >= 0) ::shutdown(socket, SHUT_RDWR);
  thread_.join();
}

void PeerWatch::start() {
  thread_ = std::thread([this] { run(); });
}

std::vector<PeerWatch::Peer> PeerWatch::peers() const {
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Peer> out;
  for (const auto& [instance, peer] : peers_) {
    if (now - peer.seen < kForget) out.push_back(peer);
  }
  return out;
}

std::string PeerWatch::encode(const Announcement& announcement) {
  rapidjson::StringBuffer text;
  rapidjson::Writer<rapidjson::StringBuffer> out(text);
  out.StartObject();
  out.Key("instance");
  out.String(announcement.instance.c_str(), static_cast<rapidjson::SizeType>(announcement.instance.size()));
  out.Key("node");
  out.String(announcement.node.c_str(), static_cast<rapidjson::SizeType>(announcement.node.size()));
  out.Key("host");
  out.String(announcement.host.c_str(), static_cast<rapidjson::SizeType>(announcement.host.size()));
  out.Key("pid");
  out.Int64(announcement.pid);
  out.Key("services");
  out.StartArray();
  for (const std::string& name : announcement.services) {
    out.String(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
  }
  out.EndArray();
  out.Key("answer");
  out.Bool(announcement.answer);
  if (announcement.discover) {
    out.Key("discover");
    out.Bool(true);
  }
  out.EndObject();
  return std::string(text.GetString(), text.GetSize());
}

bool PeerWatch::decode(std::string_view body, Announcement* announcement) {
  rapidjson::Document json;
  json.Parse(body.data(), body.size());
  if (json.HasParseError() || !json.IsObject()) return false;
  const auto text = [&json](const char* key, std::string* out) {
    auto found = json.FindMember(key);
    if (found == json.MemberEnd() || !found->value.IsString()) return false;
    *out = std::string(found->value.GetString(), found->value.GetStringLength());
    return true;
  };
  if (!text("instance", &announcement->instance) || announcement->instance.empty()) return false;
  if (!text("host", &announcement->host)) return false;
  // Optional: older workers announce no node, and no request carries one.
  if (!text("node", &announcement->node)) announcement->node.clear();
  auto discover = json.FindMember("discover");
  announcement->discover = discover != json.MemberEnd() && discover->value.IsBool() && discover->value.GetBool();
  auto pid = json.FindMember("pid");
  auto services = json.FindMember("services");
  auto answer = json.FindMember("answer");
  if (pid == json.MemberEnd() || !pid->value.IsInt64() || services == json.MemberEnd() || !services->value.IsArray() ||
      answer == json.MemberEnd() || !answer->value.IsBool()) {
    return false;
  }
  announcement->pid = static_cast<long>(pid->value.GetInt64());
  announcement->answer = answer->value.GetBool();
  announcement->services.clear();
  for (const auto& name : services->value.GetArray()) {
    if (!name.IsString()) return false;
    announcement->services.emplace_back(name.GetString(), name.GetStringLength());
  }
  announcement->services = sorted(std::move(announcement->services));
  return true;
}

void PeerWatch::run() {
  while (!stopping_) {
    try {
      serve_connection();
    } catch (const Error& e) {
      if (!stopping_) SBUS_LOG(kDebug) << "agent watch of node " << node_ << ": " << e.what();
    }
    socket_ = -1;
    std::unique_lock<std::mutex> lock(pause_mutex_);
    pause_cv_.wait_for(lock, kRetry, [this] { return stopping_.load(); });
  }
}

void PeerWatch::serve_connection() {
  AmqpConnection connection = AmqpConnection::open(uri_, options_);
  socket_ = connection.fd();
  if (stopping_) return;
  amqp_connection_state_t c = connection.get();
  const std::string routing_key = node_ + ".sbus.agents";
  // As the worker declares it (the watch may start first).
  amqp_exchange_declare(c, kChannel, to_bytes(exchange_), amqp_cstring_bytes("direct"), 0, 0, 0, 0, amqp_empty_table);
  connection.check_last("declare exchange " + exchange_);
  amqp_queue_declare(c, kChannel, to_bytes(queue_), 0, 0, 1, 1, amqp_empty_table);
  connection.check_last("declare queue " + queue_);
  amqp_queue_bind(c, kChannel, to_bytes(queue_), to_bytes(exchange_), to_bytes(routing_key), amqp_empty_table);
  connection.check_last("bind queue " + queue_);
  join_discovery(connection);
  amqp_basic_consume(c, kChannel, to_bytes(queue_), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
  connection.check_last("consume from " + queue_);

  auto next_announce = Clock::now();
  while (!stopping_) {
    if (Clock::now() >= next_announce) {
      announce(connection, routing_key, false, true);
      next_announce = Clock::now() + kAnnounceEvery;
    }
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(next_announce - Clock::now());
    timeval timeout{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
    amqp_maybe_release_buffers(c);
    amqp_envelope_t envelope{};
    const amqp_rpc_reply_t reply = amqp_consume_message(c, &envelope, &timeout, 0);
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) continue;
    connection.check(reply, "read announcements");
    Announcement announcement;
    const std::string reply_to = bytes_to_string(envelope.message.properties.reply_to);
    const bool ok = decode(bytes_to_string(envelope.message.body), &announcement);
    amqp_destroy_envelope(&envelope);
    if (!ok || announcement.instance == instance_) continue;
    if (announcement.discover) {
      if (!reply_to.empty()) announce(connection, reply_to, true, false);
      continue;
    }
    heard(announcement);
    // A newcomer learns of the agents already there from their answers.
    if (!announcement.answer && !reply_to.empty()) announce(connection, reply_to, true, false);
  }
}

// On a channel of its own: a broker user whose permissions predate
// discovery is refused the exchange, and the watch goes on without it.
void PeerWatch::join_discovery(AmqpConnection& connection) {
  constexpr amqp_channel_t kDiscoveryChannel = 3;
  amqp_connection_state_t c = connection.get();
  const std::string discovery = discovery_exchange(exchange_);
  amqp_channel_open(c, kDiscoveryChannel);
  connection.check_last("open channel for " + discovery);
  // A fanout exchange of sbus's own: one request reaches every agent of
  // every node on this exchange.
  amqp_exchange_declare(c, kDiscoveryChannel, to_bytes(discovery), amqp_cstring_bytes("fanout"), 0, 0, 0, 0,
                        amqp_empty_table);
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) {
    amqp_queue_bind(c, kDiscoveryChannel, to_bytes(queue_), to_bytes(discovery), amqp_empty_bytes, amqp_empty_table);
    reply = amqp_get_rpc_reply(c);
  }
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    if (!discovery_refused_.exchange(true)) {
      SBUS_LOG(kWarn) << "node " << node_ << " does not answer sbus discover on " << uri_.redacted() << ": "
                      << describe_reply(reply) << " (grant the broker user " << discovery << ": docs/security.md)";
    }
    amqp_channel_close_ok_t ok{};
    connection.check_status(amqp_send_method(c, kDiscoveryChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok),
                            "channel.close-ok");
    return;
  }
  connection.check(reply, "join " + discovery);
  amqp_channel_close(c, kDiscoveryChannel, AMQP_REPLY_SUCCESS);
  connection.check_last("close channel for " + discovery);
}

void PeerWatch::announce(AmqpConnection& connection, const std::string& routing_key, bool answer,
                         bool through_exchange) {
  Announcement self{instance_, node_, host_name(), static_cast<long>(::getpid()), services_, answer};
  const std::string body = encode(self);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.reply_to = to_bytes(queue_);
  props.content_type = amqp_cstring_bytes("application/json");
  const int status =
      amqp_basic_publish(connection.get(), kChannel, through_exchange ? to_bytes(exchange_) : amqp_empty_bytes,
                         to_bytes(routing_key), 0, 0, &props, to_bytes(body));
  connection.check_status(status, "announce to " + routing_key);
}

void PeerWatch::heard(const Announcement& announcement) {
  Peer peer;
  peer.host = printable(announcement.host);
  peer.pid = announcement.pid;
  peer.only_there = minus(announcement.services, services_);
  for (std::string& name : peer.only_there) name = printable(name);
  if (peer.only_there.size() > 32) peer.only_there.resize(32);
  peer.only_here = minus(services_, announcement.services);
  peer.seen = Clock::now();
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = peers_.find(announcement.instance);
    known = found != peers_.end() && found->second.only_there == peer.only_there &&
            found->second.only_here == peer.only_here;
    peers_[announcement.instance] = peer;
  }
  if (known) return;
  if (peer.same_services()) {
    SBUS_LOG(kInfo) << "another agent serves node " << node_ << " on this broker with the same services (host "
                    << peer.host << ", pid " << peer.pid << "): they share its calls";
  } else {
    SBUS_LOG(kError) << "another agent serves node " << node_ << " on this broker with other services (host "
                     << peer.host << ", pid " << peer.pid << "; only there: " << joined(peer.only_there)
                     << "; only here: " << joined(peer.only_here)
                     << "): a call to a service that one of them lacks fails with unknown_service whenever the "
                        "broker hands it to that one. Give the agents the same services or their own node names";
  }
}

}  // namespace sbus
