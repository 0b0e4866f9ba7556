// libxml2's parse of a body that the fast reader declined, internal to the
// wire codec (wire_codec.cpp). libxml2 lives in the module sbus-xml.so
// (daemon/xml/), which libxml2_parse() loads on the first such body, so a
// process that only reads what sbus and py-servicebus write maps none of
// libxml2, ICU, liblzma or zlib. It looks for the module, in order:
//   - $SBUS_XML_MODULE, when set;
//   - next to the program or library holding this code;
//   - in ../libexec/sbus from there (bin/ and lib/, in the build tree too);
//   - in the installed libexec folder (SBUS_XML_MODULE_INSTALLED).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sbus {

struct Capture;

enum class XmlParse { kWellFormed, kNotWellFormed, kOutOfMemory, kUnavailable };

// The SAX parse of `body` (which check_markup() passed) into `capture`; an
// error or a refusal is left in capture->error or capture->refused. Any
// thread. kUnavailable when the module cannot be loaded: *why says why.
XmlParse libxml2_parse(std::string_view body, Capture* capture, std::string* why);

// Loads the module now (sbusd --check: a broken install is named at once);
// empty, or why it cannot be loaded.
std::string libxml2_load_error();

// The module's parse and its entry point, which returns it for the sbus
// version it was built for only.
using XmlParseFunction = XmlParse (*)(std::string_view body, Capture* capture);
inline constexpr const char* kXmlEntrySymbol = "sbus_xml_entry";
using XmlEntryFunction = XmlParseFunction (*)(const char* version);

namespace libxml2 {
// The module's own (also linked directly into the fuzz targets).
void init();
XmlParse parse(std::string_view body, Capture* capture);
}  // namespace libxml2

}  // namespace sbus
