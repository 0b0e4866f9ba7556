// A call's params, parsed for its service: RapidJSON, depth-checked, into a
// pool of the job's own sized to them. Admission calls it on the reading
// thread; the Request the service gets points into the job's pool.
#pragma once

#include <string>
#include <string_view>

#include "worker/job.hpp"

namespace sbus {

// Deeper params are refused: RapidJSON's DOM is destroyed and written out
// recursively, so a document nested 100,000 deep would overflow a service
// thread's stack. No real call nests anywhere near this.
inline constexpr int kMaxParamsDepth = 64;

// Parses `text` into job->params (and job->params_memory); false with the
// reason in `error` (text for an `invalid_params` reply). A std::string:
// the parse reads up to its terminating NUL (RapidJSON's fast string scan
// needs one).
bool parse_params(const std::string& text, Job* job, std::string* error);

}  // namespace sbus
