// RapidJSON copies the unescaped runs of a string 16 bytes at a time with
// SSE2, which every x86-64 has: large params are mostly one long string.
// Here only, for the reader, which is the one use of its iterative parse: its
// aligned loads may touch bytes past the text's NUL (never past a page),
// which AddressSanitizer reports; and RapidJSON 1.1.0's SSE2 *writer*
// mishandles a string holding a NUL (log_format_test fails with it), so the
// definition must not reach the writers elsewhere. Before any include:
// RapidJSON's headers read it once (worker/params.hpp includes them).
#if defined(__SSE2__) && !defined(__SANITIZE_ADDRESS__) && !defined(RAPIDJSON_SSE2)
#define RAPIDJSON_SSE2
#endif

#include "worker/params.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

namespace sbus {
namespace {

// Whether `root` nests arrays and objects more than `limit` deep, walked
// with a stack of its own (the document may be nested any depth). A string
// is one value here, however long: the text is not read again.
bool deeper_than(const rapidjson::Value& root, int limit) {
  std::vector<std::pair<const rapidjson::Value*, int>> open;
  if (root.IsArray() || root.IsObject()) open.emplace_back(&root, 1);
  while (!open.empty()) {
    const auto [value, depth] = open.back();
    open.pop_back();
    if (depth > limit) return true;
    auto visit = [&open, depth = depth](const rapidjson::Value& child) {
      if (child.IsArray() || child.IsObject()) open.emplace_back(&child, depth + 1);
    };
    if (value->IsArray()) {
      for (const rapidjson::Value& child : value->GetArray()) visit(child);
    } else {
      for (const auto& member : value->GetObject()) visit(member.value);
    }
  }
  return false;
}

// RapidJSON's default parse stack; params longer than this get one of their
// length and this more.
constexpr std::size_t kParamsStackBytes = 1024;

}  // namespace

bool parse_params(const std::string& text, Job* job, std::string* error) {
  // The parse stops at a NUL: one inside the text would hide what follows.
  if (const std::size_t nul = text.find('\0'); nul != std::string::npos) {
    *error = "params are not JSON: a NUL byte at offset " + std::to_string(nul);
    return false;
  }
  // RapidJSON's parse stacks grow by realloc(), which extends a block in
  // place at the top of the thread's heap: large params would leave that
  // heap (and the RSS) as large after they are gone. Sized up front, a
  // large stack is one block that malloc maps on its own and gives back.
  const std::size_t stack_bytes = text.size() > kParamsStackBytes ? text.size() + kParamsStackBytes : kParamsStackBytes;
  // A DOM takes about 16 bytes a value: a chunk of twice the text holds
  // most params whole; larger ones take more chunks.
  const std::size_t chunk = std::clamp<std::size_t>(2 * text.size(), 256, 64 * 1024);
  job->params_memory = std::make_unique<rapidjson::MemoryPoolAllocator<>>(chunk);
  // The parse stack's allocator is stateless: one for all, instead of one
  // allocated with each document.
  static rapidjson::CrtAllocator stack_allocator;
  job->params = rapidjson::Document(job->params_memory.get(), stack_bytes, &stack_allocator);
  // Iterative, so that no depth of text overflows the stack; from the
  // NUL-terminated bytes as they are (a StringStream: UTF-8 in and out, no
  // transcoding stream between, and SSE2's string scan where built with it).
  job->params.Parse<rapidjson::kParseIterativeFlag>(text.c_str());
  if (job->params.HasParseError()) {
    *error = std::string("params are not JSON: ") + rapidjson::GetParseError_En(job->params.GetParseError()) +
             " at offset " + std::to_string(job->params.GetErrorOffset());
    return false;
  }
  // Each level opens with a '[' or '{' of its own: shorter text cannot be
  // too deep. The depth is checked on the document, not by a second parse;
  // a pool-allocated document is freed without walking it, so a deep one
  // costs nothing more to drop.
  if (text.size() > static_cast<std::size_t>(kMaxParamsDepth) && deeper_than(job->params, kMaxParamsDepth)) {
    *error = "params are nested more than " + std::to_string(kMaxParamsDepth) + " deep";
    return false;
  }
  return true;
}

}  // namespace sbus
