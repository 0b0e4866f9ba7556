#include "common/wire_codec.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include <cstring>
#include <memory>

namespace sbus {
namespace {

struct DocDeleter {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
struct CtxtDeleter {
  void operator()(xmlParserCtxt* ctxt) const { xmlFreeParserCtxt(ctxt); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocDeleter>;
using CtxtPtr = std::unique_ptr<xmlParserCtxt, CtxtDeleter>;

// No NOENT (entities stay unexpanded), no DTDLOAD, no network; the
// encoding a document declares is ignored: the wire format is UTF-8, and an
// encoding such as UTF-7 would let libxml2 read markup that
// check_markup() cannot see. Errors are read from the context instead of
// printed.
constexpr int kParseOptions =
    XML_PARSE_NONET | XML_PARSE_IGNORE_ENC | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;

// Limits no call event or response comes near: both are two levels deep,
// with six elements and at most two attributes on one.
constexpr int kMaxDepth = 16;
constexpr int kMaxMarkup = 256;     // start tags, comments and processing instructions
constexpr int kMaxAttributes = 16;  // in one start tag

void ignore_errors(void*, xmlError*) {}

bool is_named(const xmlNode* node, const char* name) {
  return node->type == XML_ELEMENT_NODE &&
         std::strcmp(reinterpret_cast<const char*>(node->name), name) == 0;
}

std::string node_text(const xmlNode* node) {
  std::string text;
  for (const xmlNode* child = node->children; child != nullptr; child = child->next) {
    if ((child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) &&
        child->content != nullptr) {
      text += reinterpret_cast<const char*>(child->content);
    }
  }
  return text;
}

const xmlNode* find_child(const xmlNode* parent, const char* name) {
  for (const xmlNode* child = parent->children; child != nullptr; child = child->next) {
    if (is_named(child, name)) return child;
  }
  return nullptr;
}

std::string attribute(const xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return {};
  std::string text(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return text;
}

bool has_attribute(const xmlNode* node, const char* name) {
  return xmlHasProp(node, reinterpret_cast<const xmlChar*>(name)) != nullptr;
}

// A linear scan of the markup, before libxml2 sees the body, for what
// libxml2 2.9 handles slowly or dangerously: a document type declaration
// (entity expansion, external entities), deep nesting, a flood of elements,
// and many attributes in one tag (its duplicate check is quadratic: 1 MB of
// attributes takes minutes). It is strict where libxml2 would fail anyway
// (a quote not after '=', '<' inside a tag), so that the two always agree
// on where tags start and end; libxml2 stops at its first error
// (stop_on_error), so it never reads past a place where they could differ.
bool check_markup(std::string_view body, DecodeFailure* failure) {
  const auto refuse = [failure](std::string detail) {
    *failure = {errc::kMalformedXml, std::move(detail)};
    return false;
  };
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  std::size_t at = body.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (at < body.size() && is_space(body[at])) ++at;
  if (at == body.size() || body[at] != '<') return refuse("not XML: the body does not start with '<'");

  int depth = 0;
  int markup = 0;
  while ((at = body.find('<', at)) != std::string_view::npos) {
    const std::string_view rest = body.substr(at + 1);
    // Skips past `close`, searched after `open`; an unclosed construct is
    // left for libxml2 to report.
    const auto skip = [&](std::size_t open, std::string_view close) {
      const std::size_t end = rest.find(close, open);
      at = end == std::string_view::npos ? body.size() : at + 1 + end + close.size();
    };
    if (rest.starts_with("![CDATA[")) {
      skip(8, "]]>");
      continue;
    }
    if (rest.starts_with("/")) {
      if (depth > 0) --depth;
      skip(1, ">");
      continue;
    }
    if (++markup > kMaxMarkup) {
      return refuse("more than " + std::to_string(kMaxMarkup) + " elements, comments and instructions");
    }
    if (rest.starts_with("!--")) {
      skip(3, "-->");
      continue;
    }
    if (rest.starts_with("?")) {
      skip(1, "?>");
      continue;
    }
    if (rest.starts_with("!")) return refuse("a document type declaration is not allowed");
    // A start tag. Its name must begin like an XML name (this also refuses
    // UTF-16 and UCS-4 text, whose second byte is 0).
    const unsigned char first = rest.empty() ? 0 : static_cast<unsigned char>(rest[0]);
    const unsigned char lower = first | 0x20;
    if (!((lower >= 'a' && lower <= 'z') || first == '_' || first == ':' || first >= 0x80)) {
      return refuse("'<' not followed by an element name");
    }
    int attributes = 0;
    std::size_t i = 1;
    for (; i < rest.size() && rest[i] != '>'; ++i) {
      const char c = rest[i];
      if (c == '<' || c == '"' || c == '\'') return refuse("malformed start tag");
      if (c != '=') continue;
      if (++attributes > kMaxAttributes) {
        return refuse("more than " + std::to_string(kMaxAttributes) + " attributes in one element");
      }
      do ++i;
      while (i < rest.size() && is_space(rest[i]));
      if (i == rest.size()) break;
      if (rest[i] != '"' && rest[i] != '\'') return refuse("malformed start tag: attribute value not quoted");
      const std::size_t close = rest.find(rest[i], i + 1);
      if (close == std::string_view::npos) {
        i = rest.size();
        break;
      }
      if (rest.substr(i + 1, close - i - 1).find('<') != std::string_view::npos) {
        return refuse("'<' in an attribute value");
      }
      i = close;
    }
    if (i >= rest.size()) break;  // unclosed: libxml2 reports it
    if (rest[i - 1] != '/' && ++depth > kMaxDepth) {
      return refuse("elements nested more than " + std::to_string(kMaxDepth) + " deep");
    }
    at += 1 + i + 1;
  }
  return true;
}

// Why a parse was stopped; in the parser context's _private.
struct ParseGuard {
  std::string refused;  // by refuse_doctype, or empty
  std::string error;    // the first error, "XML error at line N: ...", or empty
};

// The first error ends the parse: libxml2 would otherwise go on reading
// after it (without building a tree), with its view of the markup no longer
// the one check_markup() checked. Namespace errors are not fatal: a
// document with an undeclared prefix still parses.
void stop_on_error(void* user_data, xmlError* error) {
  if (error == nullptr || error->level < XML_ERR_ERROR || error->domain == XML_FROM_NAMESPACE) return;
  auto* ctxt = static_cast<xmlParserCtxt*>(user_data);
  auto* guard = static_cast<ParseGuard*>(ctxt->_private);
  if (guard->error.empty()) {
    guard->error = "XML error at line " + std::to_string(error->line) + ": " +
                   (error->message != nullptr ? error->message : "not well-formed");
    while (guard->error.back() == '\n' || guard->error.back() == ' ') guard->error.pop_back();
  }
  xmlStopParser(ctxt);
}

// Never reached after check_markup(); kept so that a DOCTYPE cannot reach
// the internal subset (entity declarations) whatever the scan missed.
void refuse_doctype(void* user_data, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* ctxt = static_cast<xmlParserCtxt*>(user_data);
  static_cast<ParseGuard*>(ctxt->_private)->refused = "a document type declaration is not allowed";
  xmlStopParser(ctxt);
}

// This thread's parser context, reused from one message to the next (a new
// context and dictionary per message were most of the cost of a parse).
// Its dictionary keeps the names it has seen: one that grew past
// kMaxDictNames (hostile documents with ever new names) is replaced.
constexpr std::size_t kMaxDictNames = 4096;

xmlParserCtxt* thread_parser() {
  thread_local CtxtPtr ctxt;
  if (ctxt && ctxt->dict != nullptr && static_cast<std::size_t>(xmlDictSize(ctxt->dict)) > kMaxDictNames) {
    ctxt.reset();
  }
  if (!ctxt) ctxt.reset(xmlNewParserCtxt());
  return ctxt.get();
}

// Parses `body` into a document whose root is `root_name`.
DocPtr parse(std::string_view body, const char* root_name, DecodeFailure* failure) {
  if (body.size() > static_cast<std::size_t>(INT32_MAX)) {
    *failure = {errc::kTooLarge, "document too large"};
    return nullptr;
  }
  if (!check_markup(body, failure)) return nullptr;
  xmlParserCtxt* ctxt = thread_parser();
  if (ctxt == nullptr) {
    *failure = {errc::kMalformedXml, "out of memory"};
    return nullptr;
  }
  ParseGuard guard;
  ctxt->_private = &guard;
  ctxt->sax->serror = stop_on_error;
  ctxt->sax->internalSubset = refuse_doctype;
  DocPtr doc(xmlCtxtReadMemory(ctxt, body.data(), static_cast<int>(body.size()), nullptr, nullptr,
                               kParseOptions));
  ctxt->_private = nullptr;
  if (!guard.refused.empty() || !guard.error.empty()) {
    // A stopped parse may still hand back a partial tree.
    *failure = {errc::kMalformedXml, !guard.refused.empty() ? guard.refused : guard.error};
    return nullptr;
  }
  if (!doc) {
    *failure = {errc::kMalformedXml, "not well-formed XML"};
    return nullptr;
  }
  if (doc->intSubset != nullptr || doc->extSubset != nullptr) {
    *failure = {errc::kMalformedXml, "a document type declaration is not allowed"};
    return nullptr;
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (root == nullptr || !is_named(root, root_name)) {
    *failure = {errc::kMalformedXml, std::string("root element is not <") + root_name + ">"};
    return nullptr;
  }
  return doc;
}

void append_escaped(std::string* out, std::string_view text, bool in_attribute) {
  for (char c : xml_safe_text(text)) {
    switch (c) {
      case '&': *out += "&amp;"; break;
      case '<': *out += "&lt;"; break;
      case '>': *out += "&gt;"; break;
      case '"':
        if (in_attribute) {
          *out += "&quot;";
          break;
        }
        [[fallthrough]];
      default: *out += c;
    }
  }
}

// A CDATA section cannot hold "]]>": split it between two sections.
void append_cdata(std::string* out, std::string_view text) {
  std::string safe = xml_safe_text(text);
  *out += "<![CDATA[";
  std::size_t start = 0;
  for (std::size_t at = safe.find("]]>"); at != std::string::npos; at = safe.find("]]>", start)) {
    out->append(safe, start, at + 2 - start);
    *out += "]]><![CDATA[";
    start = at + 2;
  }
  out->append(safe, start, std::string::npos);
  *out += "]]>";
}

}  // namespace

void wire_codec_init() {
  xmlInitParser();
  xmlSetStructuredErrorFunc(nullptr, ignore_errors);
}

bool decode_event(std::string_view body, Event* event, DecodeFailure* failure) {
  DocPtr doc = parse(body, "event", failure);
  if (!doc) return false;
  const xmlNode* root = xmlDocGetRootElement(doc.get());

  if (const xmlNode* id = find_child(root, "id")) event->id = node_text(id);
  if (!has_attribute(root, "version")) {
    *failure = {errc::kMalformedXml, "<event> has no version attribute"};
    return false;
  }

  const xmlNode* category = find_child(root, "catgory");
  if (category == nullptr) category = find_child(root, "category");
  struct Field {
    const char* name;
    const xmlNode* node;
    std::string* out;
  } fields[] = {
      {"id", find_child(root, "id"), &event->id},
      {"token", find_child(root, "token"), &event->token},
      {"catgory", category, &event->category},
      {"service", find_child(root, "service"), &event->service},
      {"params", find_child(root, "params"), &event->params},
  };
  for (const Field& field : fields) {
    if (field.node == nullptr) {
      *failure = {errc::kMissingElement, std::string("<event> has no <") + field.name + "> element"};
      return false;
    }
    *field.out = node_text(field.node);
  }
  return true;
}

std::string encode_event(const Event& event) {
  std::string out;
  out.reserve(256 + event.params.size());
  out += "<?xml version=\"1.0\"?>\n<event version=\"1\">\n    <id>";
  append_escaped(&out, event.id, false);
  out += "</id>\n    <token>";
  append_escaped(&out, event.token, false);
  out += "</token>\n    <catgory>";
  append_escaped(&out, event.category, false);
  out += "</catgory>\n    <service>";
  append_escaped(&out, event.service, false);
  out += "</service>\n    <params>";
  append_cdata(&out, event.params);
  out += "</params>\n</event>";
  return out;
}

std::string encode_reply(const Reply& reply) {
  std::string out;
  out.reserve(128 + reply.message.size());
  out += "<?xml version=\"1.0\"?>\n<response";
  if (reply.error_code.empty()) {
    out += " status=\"ok\"";
  } else {
    out += " status=\"error\" code=\"";
    append_escaped(&out, reply.error_code, true);
    out += '"';
  }
  out += ">\n    <id>";
  append_escaped(&out, reply.id, false);
  out += "</id>\n    <message>";
  append_cdata(&out, reply.message);
  out += "</message>\n</response>";
  return out;
}

bool decode_reply(std::string_view body, Reply* reply, DecodeFailure* failure) {
  DocPtr doc = parse(body, "response", failure);
  if (!doc) return false;
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  const xmlNode* id = find_child(root, "id");
  const xmlNode* message = find_child(root, "message");
  if (id == nullptr || message == nullptr) {
    *failure = {errc::kMissingElement,
                std::string("<response> has no <") + (id == nullptr ? "id" : "message") + "> element"};
    return false;
  }
  reply->id = node_text(id);
  reply->message = node_text(message);
  reply->error_code.clear();
  if (has_attribute(root, "status")) {
    if (attribute(root, "status") == "error") {
      reply->error_code = attribute(root, "code");
      if (reply->error_code.empty()) reply->error_code = "error";
    }
  } else if (reply->message == "Token not valid!") {
    reply->error_code = errc::kInvalidToken;
  } else if (reply->message.rfind("Cannot Find RPC Service:", 0) == 0) {
    reply->error_code = errc::kUnknownService;
  }
  return true;
}

std::string xml_safe_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      out += (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f ? '?' : static_cast<char>(c);
      ++p;
      continue;
    }
    // A well-formed UTF-8 sequence of 2 to 4 bytes, no overlongs or surrogates.
    int length = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    if (c >= 0xf5) length = 0;
    bool valid = length > 0 && end - p >= length;
    for (int i = 1; valid && i < length; ++i) valid = (p[i] & 0xc0) == 0x80;
    if (valid && length == 3) {
      // No overlongs, no surrogates, and not U+FFFE or U+FFFF (XML forbids them).
      valid = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0) &&
              !(c == 0xef && p[1] == 0xbf && p[2] >= 0xbe);
    }
    if (valid && length == 4) {
      valid = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
    }
    if (!valid) {
      out += '?';
      ++p;
      continue;
    }
    out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(length));
    p += length;
  }
  return out;
}

}  // namespace sbus
