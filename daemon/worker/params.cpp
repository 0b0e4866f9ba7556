#include "worker/params.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <memory>

namespace sbus {
namespace {

// A SAX pass that only counts nesting; iterative, so the check itself
// cannot overflow the stack.
class DepthCheck : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthCheck> {
 public:
  bool StartObject() { return ++depth_ <= kMaxParamsDepth; }
  bool EndObject(rapidjson::SizeType) { return --depth_, true; }
  bool StartArray() { return ++depth_ <= kMaxParamsDepth; }
  bool EndArray(rapidjson::SizeType) { return --depth_, true; }
  bool too_deep() const { return depth_ > kMaxParamsDepth; }

 private:
  int depth_ = 0;
};

// RapidJSON's default parse stack; params longer than this get one of their
// length and this more.
constexpr std::size_t kParamsStackBytes = 1024;

}  // namespace

bool parse_params(std::string_view text, Job* job, std::string* error) {
  rapidjson::ParseResult result;
  // Each level opens with a '[' or '{' of its own: shorter text cannot be
  // too deep, and skips the pass (and its two allocations).
  // RapidJSON's parse stacks grow by realloc(), which extends a block in
  // place at the top of the thread's heap: large params would leave that
  // heap (and the RSS) as large after they are gone. Sized up front, a
  // large stack is one block that malloc maps on its own and gives back.
  const std::size_t stack_bytes = text.size() > kParamsStackBytes ? text.size() + kParamsStackBytes : kParamsStackBytes;
  if (text.size() > static_cast<std::size_t>(kMaxParamsDepth)) {
    DepthCheck check;
    rapidjson::Reader reader(nullptr, stack_bytes);
    rapidjson::MemoryStream stream(text.data(), text.size());
    result = reader.Parse<rapidjson::kParseIterativeFlag>(stream, check);
    if (check.too_deep()) {
      *error = "params are nested more than " + std::to_string(kMaxParamsDepth) + " deep";
      return false;
    }
  }
  if (!result.IsError()) {
    // A DOM takes about 16 bytes a value: a chunk of twice the text holds
    // most params whole; larger ones take more chunks.
    const std::size_t chunk = std::clamp<std::size_t>(2 * text.size(), 256, 64 * 1024);
    job->params_memory = std::make_unique<rapidjson::MemoryPoolAllocator<>>(chunk);
    // The parse stack's allocator is stateless: one for all, instead of one
    // allocated with each document.
    static rapidjson::CrtAllocator stack_allocator;
    job->params = rapidjson::Document(job->params_memory.get(), stack_bytes, &stack_allocator);
    job->params.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
    result = rapidjson::ParseResult(job->params.GetParseError(), job->params.GetErrorOffset());
  }
  if (result.IsError()) {
    *error = std::string("params are not JSON: ") + rapidjson::GetParseError_En(result.Code()) + " at offset " +
             std::to_string(result.Offset());
    return false;
  }
  return true;
}

}  // namespace sbus
