// RapidJSON copies the unescaped runs of a string 16 bytes at a time with
// SSE2, which every x86-64 has: large params and replies are mostly one long
// string. Here only, for the reader: its aligned loads may touch bytes past
// the text's NUL (never past a page), which AddressSanitizer reports; and
// RapidJSON 1.1.0's SSE2 *writer* mishandles a string holding a NUL
// (log_format_test fails with it), so the definition must not reach the
// writers elsewhere (this file instantiates none). Before any include:
// RapidJSON's headers read it once.
#if defined(__SSE2__) && !defined(__SANITIZE_ADDRESS__) && !defined(RAPIDJSON_SSE2)
#define RAPIDJSON_SSE2
#endif

#include "worker/params.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <memory>

namespace sbus {
namespace {

// Counts how deep the reader is; stops it one level past `limit`, so text
// nested any deeper costs no more than that.
class DepthLimit : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthLimit> {
 public:
  explicit DepthLimit(int limit) : limit_(limit) {}
  bool Default() {  // every scalar and key
    ++values_;
    return true;
  }
  bool StartObject() { return open(); }
  bool StartArray() { return open(); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool EndArray(rapidjson::SizeType) { return close(); }
  bool too_deep() const { return too_deep_; }
  std::size_t values() const { return values_; }

 private:
  bool open() {
    ++values_;
    too_deep_ = ++depth_ > limit_;
    return !too_deep_;
  }
  bool close() {
    --depth_;
    return true;
  }
  int limit_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::size_t values_ = 0;
};

// What RapidJSON's document takes a value.
constexpr std::size_t kDocumentBytesPerValue = 16;

// The reader's stack holds each string it reads whole: kept between calls
// of one thread up to this size, so that typical params take no allocation;
// a larger one is given back after the text that grew it.
constexpr std::size_t kKeptStackBytes = 128 * 1024;

// Parses `text` with `Flags` into `handler` on this thread's reader; `*end`:
// the offset where the reader stopped.
template <unsigned Flags, typename Handler>
rapidjson::ParseResult read_json(const std::string& text, Handler& handler, std::size_t* end = nullptr) {
  thread_local std::unique_ptr<rapidjson::Reader> reader;
  if (reader == nullptr) reader = std::make_unique<rapidjson::Reader>();
  rapidjson::StringStream stream(text.c_str());
  const rapidjson::ParseResult result = reader->Parse<Flags>(stream, handler);
  if (end != nullptr) *end = stream.Tell();
  if (text.size() > kKeptStackBytes) reader.reset();
  return result;
}

}  // namespace

bool check_params(const std::string& text, std::string* error, std::size_t* document_bytes) {
  // The parse stops at a NUL: one inside the text would hide what follows.
  if (const std::size_t nul = text.find('\0'); nul != std::string::npos) {
    *error = "params are not JSON: a NUL byte at offset " + std::to_string(nul);
    return false;
  }
  DepthLimit depth(kMaxParamsDepth);
  // Iterative, so that no depth of text overflows the stack.
  const rapidjson::ParseResult result = read_json<rapidjson::kParseIterativeFlag>(text, depth);
  if (depth.too_deep()) {
    *error = "params are nested more than " + std::to_string(kMaxParamsDepth) + " deep";
    return false;
  }
  if (result.IsError()) {
    *error = std::string("params are not JSON: ") + rapidjson::GetParseError_En(result.Code()) + " at offset " +
             std::to_string(result.Offset());
    return false;
  }
  if (document_bytes != nullptr) *document_bytes = depth.values() * kDocumentBytesPerValue;
  return true;
}

bool is_one_json_value(const std::string& text) {
  rapidjson::BaseReaderHandler<> ignore;
  std::size_t end = 0;
  const rapidjson::ParseResult result =
      read_json<rapidjson::kParseIterativeFlag | rapidjson::kParseStopWhenDoneFlag>(text, ignore, &end);
  if (result.IsError()) return false;
  // A NUL ends the reader's stream: it is not a blank either.
  for (std::size_t i = end; i < text.size(); ++i) {
    const char c = text[i];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return false;
  }
  return true;
}

}  // namespace sbus
