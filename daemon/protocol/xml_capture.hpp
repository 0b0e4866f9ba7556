// What a decode keeps of an XML body, and the fast reader that fills it
// without libxml2: internal to the wire codec (wire_codec.cpp,
// xml_fast_reader.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sbus {

// Limits no call event or response comes near: both are two levels deep,
// with six elements and at most two attributes on one. check_markup()
// refuses a body past them, and the fast reader declines it.
inline constexpr int kMaxDepth = 16;
inline constexpr int kMaxMarkup = 256;     // start tags, comments and processing instructions
inline constexpr int kMaxAttributes = 16;  // in one start tag

// What one parse keeps of the document, filled by the SAX callbacks below:
// no tree is built. Of the root it keeps the name and wanted attributes; of
// its children, the text (character data and CDATA, not that of deeper
// elements) of the first child of each wanted name, as a tree walk would.
struct Capture {
  struct Field {
    std::string_view name;
    std::string* text;
    bool seen = false;
  };
  struct Attribute {
    std::string_view name;
    std::string* value;
    bool seen = false;
  };
  Field* fields = nullptr;
  std::size_t field_count = 0;
  Attribute* attributes = nullptr;
  std::size_t attribute_count = 0;

  std::string root;       // the root element's local name
  int depth = 0;          // of the element being read: the root is 1
  Field* open = nullptr;  // the wanted child being read, if any
  std::string refused;    // by refuse_doctype, or empty
  std::string error;      // the first error, "XML error at line N: ...", or empty
};

// The fast reader: the layout that sbus and py-servicebus write, read
// without libxml2. True when it took all of `body`: `capture` then holds
// what libxml2's parse would have left there. False: `capture` is to be
// reset and the body parsed by libxml2 (xml_fast_reader.cpp says which
// bodies it takes).
bool fast_read(std::string_view body, Capture* capture);

}  // namespace sbus
