// The seal a worker puts on what it moves to its error queue (header
// x-sbus-seal), for `sbus errors requeue`: an entry is signed anew only when
// its seal proves that a worker holding the secret put it there after the
// message passed its token check (a message that failed max_retries times,
// or one refused for another reason). A message refused for its token gets
// no seal, nor does anything published into the error queue by others: those
// go back with the token they came with, so requeueing never signs a
// message that anybody could have written.
//
//   x-sbus-seal: HMAC-SHA256(secret, "sbus-error" NODE BODY), fields length-prefixed
#pragma once

#include <string>
#include <string_view>

namespace sbus {

std::string error_seal(std::string_view secret, std::string_view node, std::string_view body);
bool error_seal_valid(std::string_view seal, std::string_view secret, std::string_view node, std::string_view body);

}  // namespace sbus
