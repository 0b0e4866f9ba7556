// libFuzzer target: a delivery body as the worker decodes it.
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
  sbus::Event event;
  sbus::DecodeFailure failure;
  if (sbus::decode_event(body, &event, &failure)) {
    // What decodes must encode and decode again to the same event.
    sbus::Event again;
    if (!sbus::decode_event(sbus::encode_event(event), &again, &failure)) __builtin_trap();
  } else {
    // The error reply is built from the failure and whatever id was read.
    sbus::encode_reply(sbus::Reply{event.id, failure.detail, failure.code});
  }
  return 0;
}
