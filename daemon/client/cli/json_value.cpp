#include "client/cli/json_value.hpp"

#include <rapidjson/encodings.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>

namespace sbus::cli {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Collects the bytes of one code point as rapidjson's validator takes them.
struct Bytes {
  using Ch = char;
  std::string out;
  void Put(char c) { out += c; }
};

}  // namespace

std::string valid_utf8(std::string_view text) {
  // Whole runs of ASCII as they are; the rest one code point at a time
  // through RapidJSON's own UTF-8 validator. It reads from a C string, so
  // the input is copied to one (an embedded NUL is the valid code point 0).
  const std::string copy(text);
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < copy.size()) {
    if (static_cast<unsigned char>(copy[at]) < 0x80) {
      out += copy[at++];
      continue;
    }
    rapidjson::StringStream in(copy.c_str() + at);
    Bytes one;
    if (rapidjson::UTF8<>::Validate(in, one) && at + in.Tell() <= copy.size()) {
      out += one.out;
      at += in.Tell();
    } else {
      out += kReplacement;
      ++at;
    }
  }
  return out;
}

JsonObject::JsonObject() {
  document_.SetObject();
}

JsonObject::JsonObject(const JsonObject& other) {
  document_.CopyFrom(other.document_, document_.GetAllocator());
}

JsonObject& JsonObject::operator=(const JsonObject& other) {
  if (this != &other) document_.CopyFrom(other.document_, document_.GetAllocator());
  return *this;
}

std::optional<JsonObject> JsonObject::parse(std::string_view json_text) {
  JsonObject object;
  object.document_.Parse<rapidjson::kParseValidateEncodingFlag>(json_text.data(), json_text.size());
  if (object.document_.HasParseError() || !object.document_.IsObject()) return std::nullopt;
  return object;
}

rapidjson::Value JsonObject::string_value(std::string_view text) {
  const std::string valid = valid_utf8(text);
  return rapidjson::Value(valid.data(), static_cast<rapidjson::SizeType>(valid.size()), document_.GetAllocator());
}

JsonObject& JsonObject::add(std::string_view key, rapidjson::Value value) {
  rapidjson::Value name = string_value(key);
  document_.AddMember(name, value, document_.GetAllocator());
  return *this;
}

JsonObject& JsonObject::text(std::string_view key, std::string_view value) {
  return add(key, string_value(value));
}

JsonObject& JsonObject::number(std::string_view key, double value) {
  // NaN and infinities are no JSON.
  return add(key, std::isfinite(value) ? rapidjson::Value(value) : rapidjson::Value());
}

JsonObject& JsonObject::integer(std::string_view key, std::int64_t value) {
  return add(key, rapidjson::Value(static_cast<int64_t>(value)));
}

JsonObject& JsonObject::flag(std::string_view key, bool value) {
  return add(key, rapidjson::Value(value));
}

JsonObject& JsonObject::null(std::string_view key) {
  return add(key, rapidjson::Value());
}

bool JsonObject::json(std::string_view key, std::string_view json_text) {
  rapidjson::Document parsed;
  // Validated: RapidJSON otherwise passes invalid UTF-8 inside strings through.
  // NaN, Infinity and numbers too big for a double do not parse: they go in
  // as text.
  parsed.Parse<rapidjson::kParseValidateEncodingFlag>(json_text.data(), json_text.size());
  if (parsed.HasParseError()) {
    add(key, string_value(json_text));
    return false;
  }
  add(key, rapidjson::Value(parsed, document_.GetAllocator()));
  return true;
}

JsonObject& JsonObject::object(std::string_view key, const JsonObject& value) {
  return add(key, rapidjson::Value(value.document_, document_.GetAllocator()));
}

JsonObject& JsonObject::objects(std::string_view key, const std::vector<JsonObject>& values) {
  rapidjson::Value array(rapidjson::kArrayType);
  for (const JsonObject& value : values) {
    array.PushBack(rapidjson::Value(value.document_, document_.GetAllocator()), document_.GetAllocator());
  }
  return add(key, std::move(array));
}

JsonObject& JsonObject::texts(std::string_view key, const std::vector<std::string>& values) {
  rapidjson::Value array(rapidjson::kArrayType);
  for (const std::string& value : values) array.PushBack(string_value(value), document_.GetAllocator());
  return add(key, std::move(array));
}

JsonObject& JsonObject::merge(const JsonObject& other) {
  for (const auto& member : other.document_.GetObject()) {
    document_.AddMember(rapidjson::Value(member.name, document_.GetAllocator()),
                        rapidjson::Value(member.value, document_.GetAllocator()), document_.GetAllocator());
  }
  return *this;
}

std::string JsonObject::str() const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  document_.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace sbus::cli
