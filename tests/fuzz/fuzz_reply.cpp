// libFuzzer target: a reply body as the sender library decodes it, by both
// of the codec's readers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/wire_codec.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  sbus::Reply reply;
  sbus::DecodeFailure failure;
  const bool ok = sbus::decode_reply(body, &reply, &failure);
  // The fast reader must read every body as libxml2 alone does.
  sbus::Reply slow;
  sbus::DecodeFailure slow_failure;
  if (sbus::decode_reply(body, &slow, &slow_failure, sbus::XmlReader::kLibxml2) != ok || slow.id != reply.id ||
      slow.message != reply.message || slow.error_code != reply.error_code || slow.signature != reply.signature ||
      slow_failure.code != failure.code || slow_failure.detail != failure.detail) {
    __builtin_trap();
  }
  if (ok) {
    sbus::Reply again;
    if (!sbus::decode_reply(sbus::encode_reply(reply), &again, &failure)) __builtin_trap();
  }
  return 0;
}
