// Where an sbus program finds one of its modules (sbus-tls.so, sbus-xml.so:
// a library that only some processes need, loaded by the first that does),
// and loading it. The candidates, in order:
//   - the file $ENV_VAR names, when set (and nothing else);
//   - FILE_NAME next to the program or shared object holding this code;
//   - ../libexec/sbus/FILE_NAME from there (bin/ and lib/, in the build
//     tree too);
//   - the installed path.
#pragma once

#include <string>
#include <vector>

namespace sbus {

std::vector<std::string> module_candidates(const char* env_var, const char* file_name, const std::string& installed);

// dlopen()s the first of `candidates` that exists and returns its `symbol`;
// nullptr with *error = "the KIND module FILE_NAME cannot be loaded (...)",
// naming each path tried and why it failed ("no such file", the loader's
// message, "not an sbus KIND module (no SYMBOL)").
void* load_module_entry(const std::vector<std::string>& candidates, const char* kind, const char* file_name,
                        const char* symbol, std::string* error);

}  // namespace sbus
