#include "protocol/xml_text_scan.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sbus {
namespace {

bool plain(unsigned char c, TextScan scan) {
  if (c >= 0x20 && c <= 0x7e) return !(scan.markup && (c == '<' || c == '&'));
  return c == '\t' || c == '\n' || (scan.carriage_return && c == '\r');
}

}  // namespace

std::size_t plain_text_length(std::string_view text, TextScan scan) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t at = 0;
#if defined(__SSE2__)
  // A block with no byte below 0x20 or above 0x7e (compared as signed, bytes
  // over 0x7f are negative: below 0x20 too) and no markup is all plain. A
  // block with one is looked at byte by byte: tab and LF are plain.
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  // Without markup, '<' and '&' are looked for as DEL, a stop anyway.
  const __m128i lt = _mm_set1_epi8(scan.markup ? '<' : 0x7f);
  const __m128i amp = _mm_set1_epi8(scan.markup ? '&' : 0x7f);
  for (; at + 16 <= size; at += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + at));
    const __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(block, space), _mm_cmpeq_epi8(block, del)),
                                      _mm_or_si128(_mm_cmpeq_epi8(block, lt), _mm_cmpeq_epi8(block, amp)));
    if (_mm_movemask_epi8(stop) == 0) continue;
    for (std::size_t i = at; i < at + 16; ++i) {
      if (!plain(bytes[i], scan)) return i;
    }
  }
#endif
  for (; at < size; ++at) {
    if (!plain(bytes[at], scan)) return at;
  }
  return size;
}

}  // namespace sbus
