// libFuzzer target: a delivery body as the worker decodes it, by both of
// the codec's readers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/wire_codec.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  sbus::Event event;
  sbus::DecodeFailure failure;
  const bool ok = sbus::decode_event(body, &event, &failure);
  // The fast reader must read every body as libxml2 alone does.
  sbus::Event slow;
  sbus::DecodeFailure slow_failure;
  if (sbus::decode_event(body, &slow, &slow_failure, sbus::XmlReader::kLibxml2) != ok || slow.id != event.id ||
      slow.token != event.token || slow.category != event.category || slow.service != event.service ||
      slow.params != event.params || slow_failure.code != failure.code || slow_failure.detail != failure.detail) {
    __builtin_trap();
  }
  if (ok) {
    // What decodes must encode and decode again to the same event.
    sbus::Event again;
    if (!sbus::decode_event(sbus::encode_event(event), &again, &failure)) __builtin_trap();
  } else {
    // The error reply is built from the failure and whatever id was read.
    sbus::encode_reply(sbus::Reply{event.id, failure.detail, failure.code});
  }
  return 0;
}
