// libFuzzer target: a reply body as the sender library decodes it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/wire_codec.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  sbus::wire_codec_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  sbus::Reply reply;
  sbus::DecodeFailure failure;
  if (sbus::decode_reply(body, &reply, &failure)) {
    sbus::Reply again;
    if (!sbus::decode_reply(sbus::encode_reply(reply), &again, &failure)) __builtin_trap();
  }
  return 0;
}
