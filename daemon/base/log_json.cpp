#include <rapidjson/encodings.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "base/log_record.hpp"

namespace sbus {
namespace {

// The text with every byte that does not start a valid UTF-8 sequence
// written as \xNN (as the text format writes control characters), so that
// the JSON writer gets valid UTF-8 and its output is valid JSON.
std::string valid_utf8(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    rapidjson::GenericStringStream<rapidjson::UTF8<>> in(text.data() + at);
    // The views of a LogRecord end where their std::string does, with a
    // NUL, at which Validate() stops; a NUL inside counts as not valid.
    rapidjson::StringBuffer sink;
    const bool ok = static_cast<unsigned char>(text[at]) != 0 && rapidjson::UTF8<>::Validate(in, sink) &&
                    at + in.Tell() <= text.size();
    if (ok) {
      out.append(text.data() + at, in.Tell());
      at += in.Tell();
    } else {
      const auto byte = static_cast<unsigned char>(text[at]);
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
      ++at;
    }
  }
  return out;
}

// Adds "key": value; an empty value is left out unless `always`.
void add(rapidjson::Writer<rapidjson::StringBuffer>& writer, const char* key, std::string_view value,
         bool always = false) {
  if (value.empty() && !always) return;
  const std::string text = valid_utf8(value);
  writer.Key(key);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

}  // namespace

std::string log_json_line(const LogRecord& record) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  add(writer, "time", record.utc_time);
  add(writer, "level", log_level_name(record.level));
  add(writer, "tag", record.tag);
  writer.Key("pid");
  writer.Int64(record.pid);
  add(writer, "message", record.text, true);
  add(writer, "node", record.node);
  add(writer, "broker", record.broker);
  add(writer, "service", record.service);
  add(writer, "event_id", record.event_id);
  add(writer, "caller", record.caller);
  if (!record.worker_pid.empty()) {
    writer.Key("worker_pid");
    writer.Int64(std::stoll(std::string(record.worker_pid)));
  }
  writer.EndObject();
  std::string line(buffer.GetString(), buffer.GetSize());
  line += '\n';
  return line;
}

}  // namespace sbus
