// The JSON that `sbus --json` prints, built as a value and written by
// RapidJSON, never by hand: whatever a service, a broker or a file gives
// (quotes, backslashes, control characters, bytes that are not UTF-8, text
// of any length), the output is one valid JSON document. Text is made
// valid UTF-8 as it goes in (each byte that does not belong to a valid
// sequence becomes U+FFFD); JSON text from a service goes in as its value
// when it parses as valid UTF-8 JSON, else as a string.
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbus::cli {

// `text` as valid UTF-8: every byte that does not start a valid sequence
// (or is a lone continuation byte) replaced by U+FFFD.
std::string valid_utf8(std::string_view text);

// A JSON object built member by member; members keep their order. Values
// are copied in, so a JsonObject owns all it holds.
class JsonObject {
 public:
  JsonObject();
  JsonObject(const JsonObject& other);
  JsonObject& operator=(const JsonObject& other);
  JsonObject(JsonObject&&) = default;
  // `json_text` when it is a JSON object in valid UTF-8; nullopt otherwise.
  static std::optional<JsonObject> parse(std::string_view json_text);
  JsonObject& operator=(JsonObject&&) = default;

  JsonObject& text(std::string_view key, std::string_view value);
  JsonObject& number(std::string_view key, double value);
  JsonObject& integer(std::string_view key, std::int64_t value);
  JsonObject& flag(std::string_view key, bool value);
  JsonObject& null(std::string_view key);
  // `json_text` parsed (as the value, when it is JSON in valid UTF-8) or,
  // when it is not, as a string; whether it parsed.
  bool json(std::string_view key, std::string_view json_text);
  JsonObject& object(std::string_view key, const JsonObject& value);
  JsonObject& objects(std::string_view key, const std::vector<JsonObject>& values);
  JsonObject& texts(std::string_view key, const std::vector<std::string>& values);
  // Every member of `other` added to this one.
  JsonObject& merge(const JsonObject& other);

  // The document on one line, without a line break.
  std::string str() const;
  const rapidjson::Value& value() const { return document_; }

 private:
  JsonObject& add(std::string_view key, rapidjson::Value value);
  rapidjson::Value string_value(std::string_view text);

  rapidjson::Document document_;
};

}  // namespace sbus::cli
