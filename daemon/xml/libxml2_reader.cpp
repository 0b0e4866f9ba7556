// sbus-xml.so: libxml2's parse of a body that the wire codec's fast reader
// declined (protocol/xml_libxml2.hpp), the one part of sbus that maps
// libxml2 (with ICU, liblzma and zlib, 1.5 MB of a process's RSS). It
// exports its entry point and nothing else. Built into the fuzz targets
// directly (SBUS_XML_LINKED).
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include <cstring>
#include <memory>
#include <string>

#include "protocol/xml_capture.hpp"
#include "protocol/xml_libxml2.hpp"

namespace sbus {
namespace {

struct CtxtDeleter {
  void operator()(xmlParserCtxt* ctxt) const { xmlFreeParserCtxt(ctxt); }
};
using CtxtPtr = std::unique_ptr<xmlParserCtxt, CtxtDeleter>;

// No NOENT (entities stay unexpanded), no DTDLOAD, no network; the
// encoding a document declares is ignored: the wire format is UTF-8, and an
// encoding such as UTF-7 would let libxml2 read markup that
// check_markup() cannot see. Errors are read from the context instead of
// printed.
constexpr int kParseOptions = XML_PARSE_NONET | XML_PARSE_IGNORE_ENC | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

void ignore_errors(void*, xmlError*) {}

Capture* capture_of(void* user_data) {
  return static_cast<Capture*>(static_cast<xmlParserCtxt*>(user_data)->_private);
}

const char* text_of(const xmlChar* text) {
  return reinterpret_cast<const char*>(text);
}

// Without entity substitution, libxml2 hands an '&' of an attribute value
// (written "&amp;" or "&#38;") to SAX as "&#38;"; every other reference is
// decoded already.
std::string attribute_value(const xmlChar* begin, const xmlChar* end) {
  std::string value(text_of(begin), static_cast<std::size_t>(end - begin));
  for (std::size_t at = value.find("&#38;"); at != std::string::npos; at = value.find("&#38;", at + 1)) {
    value.replace(at, 5, "&");
  }
  return value;
}

void start_element(void* user_data, const xmlChar* name, const xmlChar*, const xmlChar*, int, const xmlChar**,
                   int attribute_count, int, const xmlChar** attributes) {
  Capture* capture = capture_of(user_data);
  ++capture->depth;
  if (capture->depth == 1) {
    capture->root = text_of(name);
    // Five pointers an attribute: local name, prefix, URI, value, value end.
    for (int i = 0; i < attribute_count; ++i) {
      const xmlChar** attribute = attributes + 5 * i;
      for (std::size_t w = 0; w < capture->attribute_count; ++w) {
        Capture::Attribute& wanted = capture->attributes[w];
        if (!wanted.seen && text_of(attribute[0]) == wanted.name) {
          wanted.seen = true;
          *wanted.value = attribute_value(attribute[3], attribute[4]);
        }
      }
    }
    return;
  }
  if (capture->depth != 2) return;
  for (std::size_t f = 0; f < capture->field_count; ++f) {
    Capture::Field& field = capture->fields[f];
    if (!field.seen && text_of(name) == field.name) {
      field.seen = true;
      field.text->clear();
      capture->open = &field;
      return;
    }
  }
}

void end_element(void* user_data, const xmlChar*, const xmlChar*, const xmlChar*) {
  Capture* capture = capture_of(user_data);
  if (capture->depth == 2) capture->open = nullptr;
  --capture->depth;
}

// Character data, whitespace and CDATA alike.
void characters(void* user_data, const xmlChar* text, int length) {
  Capture* capture = capture_of(user_data);
  if (capture->depth == 2 && capture->open != nullptr) {
    capture->open->text->append(text_of(text), static_cast<std::size_t>(length));
  }
}

// The first error ends the parse: libxml2 would otherwise go on reading
// after it, with its view of the markup no longer the one check_markup()
// checked. Namespace errors are not fatal: a document with an undeclared
// prefix still parses.
void stop_on_error(void* user_data, xmlError* error) {
  if (error == nullptr || error->level < XML_ERR_ERROR || error->domain == XML_FROM_NAMESPACE) return;
  auto* ctxt = static_cast<xmlParserCtxt*>(user_data);
  Capture* capture = capture_of(ctxt);
  if (capture->error.empty()) {
    capture->error = "XML error at line " + std::to_string(error->line) + ": " +
                     (error->message != nullptr ? error->message : "not well-formed");
    while (capture->error.back() == '\n' || capture->error.back() == ' ') capture->error.pop_back();
  }
  xmlStopParser(ctxt);
}

// Never reached after check_markup(); kept so that a DOCTYPE cannot reach
// the internal subset (entity declarations) whatever the scan missed.
void refuse_doctype(void* user_data, const xmlChar*, const xmlChar*, const xmlChar*) {
  capture_of(user_data)->refused = "a document type declaration is not allowed";
  xmlStopParser(static_cast<xmlParserCtxt*>(user_data));
}

// This thread's parser context, reused from one message to the next (a new
// context and dictionary per message were most of the cost of a parse),
// with SAX callbacks that keep what a decode needs and build no tree: no
// document, no nodes, no copies of the text. Its dictionary keeps the names
// it has seen: one that grew past kMaxDictNames (hostile documents with
// ever new names) is replaced.
constexpr std::size_t kMaxDictNames = 4096;

xmlParserCtxt* thread_parser() {
  thread_local CtxtPtr ctxt;
  if (ctxt && ctxt->dict != nullptr && static_cast<std::size_t>(xmlDictSize(ctxt->dict)) > kMaxDictNames) {
    ctxt.reset();
  }
  if (!ctxt) {
    ctxt.reset(xmlNewParserCtxt());
    if (!ctxt) return nullptr;
    xmlSAXHandler* sax = ctxt->sax;
    std::memset(sax, 0, sizeof(*sax));
    sax->initialized = XML_SAX2_MAGIC;
    sax->startElementNs = start_element;
    sax->endElementNs = end_element;
    sax->characters = characters;
    sax->ignorableWhitespace = characters;
    sax->cdataBlock = characters;
    sax->internalSubset = refuse_doctype;
    sax->serror = stop_on_error;
  }
  return ctxt.get();
}

constexpr std::size_t kKeepInputBytes = 64 * 1024;

}  // namespace

namespace libxml2 {

void init() {
  xmlInitParser();
  xmlSetStructuredErrorFunc(nullptr, ignore_errors);
}

XmlParse parse(std::string_view body, Capture* capture) {
  xmlParserCtxt* ctxt = thread_parser();
  if (ctxt == nullptr) return XmlParse::kOutOfMemory;
  ctxt->_private = capture;
  // The whole body as the one and last chunk of a push parse. libxml2 2.9's
  // pull parser (xmlCtxtReadMemory) asks its input for more data at nearly
  // every token once fewer than 250 bytes are left, which for a call event
  // is from its first byte: that took more than half of the instructions of
  // a parse (34,800 per event, 15,800 pushed: sbus-codec-bench under
  // callgrind). No document is built (the SAX callbacks keep what is
  // needed), so none comes back: well-formedness is read from the context.
  xmlCtxtResetPush(ctxt, nullptr, 0, nullptr, nullptr);
  xmlCtxtUseOptions(ctxt, kParseOptions);
  xmlParseChunk(ctxt, body.data(), static_cast<int>(body.size()), 1);
  const bool well_formed = ctxt->wellFormed != 0;
  // The context keeps its copy of the input until the next parse: not that
  // of a large body.
  if (body.size() > kKeepInputBytes) xmlCtxtReset(ctxt);
  ctxt->_private = nullptr;
  return well_formed ? XmlParse::kWellFormed : XmlParse::kNotWellFormed;
}

}  // namespace libxml2
}  // namespace sbus

#ifndef SBUS_XML_LINKED
// The module's entry point: its parse function, once libxml2 is set up,
// for the sbus version it was built with only (the Capture it fills is
// that version's).
extern "C" __attribute__((visibility("default"))) sbus::XmlParseFunction sbus_xml_entry(const char* version) {
  if (std::strcmp(version, SBUS_VERSION) != 0) return nullptr;
  sbus::libxml2::init();
  return &sbus::libxml2::parse;
}
#endif
