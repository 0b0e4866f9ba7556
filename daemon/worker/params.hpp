// JSON text the worker passes through without keeping a document of it: a
// call's params (checked on the reading thread at admission, then handed to
// the plugin as the text they came in) and a plugin's reply (checked on the
// service thread before it is spliced into the reply). RapidJSON's SAX
// reader, iterative, with its SSE2 string scan where built with it.
#pragma once

#include <cstddef>
#include <string>

namespace sbus {

// Deeper params are refused: no real call nests anywhere near this, and a
// plugin's own parser (RapidJSON's DOM is destroyed recursively) would
// overflow a service thread's stack on a document nested 100,000 deep.
inline constexpr int kMaxParamsDepth = 64;

// Whether `text` is one JSON value nested at most kMaxParamsDepth deep;
// false with the reason in `error` (text for an `invalid_params` reply). A
// std::string: the reader reads up to its terminating NUL (RapidJSON's fast
// string scan needs one), so a NUL inside the text is refused by name.
// `*document_bytes` (if given): about what a document of the params takes
// (16 bytes a value, as RapidJSON's), which the plugin's SDK builds when the
// job runs; the service's queue budget counts it with the text.
bool check_params(const std::string& text, std::string* error, std::size_t* document_bytes = nullptr);

// Whether `text` is one JSON value, with nothing but blanks after it (a
// plugin's reply_result()); any depth, without recursion.
bool is_one_json_value(const std::string& text);

}  // namespace sbus
