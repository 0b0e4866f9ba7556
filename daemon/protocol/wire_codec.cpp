#include "protocol/wire_codec.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <memory>

#include "protocol/xml_capture.hpp"
#include "protocol/xml_libxml2.hpp"
#include "protocol/xml_text_scan.hpp"

namespace sbus {
namespace {

bool is_xml_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// A malformed_xml failure with `detail`; false, for `return refuse_markup(...)`.
bool refuse_markup(DecodeFailure* failure, std::string detail) {
  *failure = {errc::kMalformedXml, std::move(detail)};
  return false;
}

// The attributes of a start tag, `rest` being what follows its '<', from
// *end (past the name's first character) up to its '>': *end is left at
// that '>', or at rest.size() when the tag is not closed. False, with
// *failure set, for what libxml2 would read otherwise than this scan, or
// for too many attributes.
bool scan_start_tag(std::string_view rest, std::size_t* end, DecodeFailure* failure) {
  int attributes = 0;
  std::size_t& i = *end;
  for (; i < rest.size() && rest[i] != '>'; ++i) {
    const char c = rest[i];
    if (c == '<' || c == '"' || c == '\'') return refuse_markup(failure, "malformed start tag");
    if (c != '=') continue;
    if (++attributes > kMaxAttributes) {
      return refuse_markup(failure, "more than " + std::to_string(kMaxAttributes) + " attributes in one element");
    }
    do ++i;
    while (i < rest.size() && is_xml_space(rest[i]));
    if (i == rest.size()) break;
    if (rest[i] != '"' && rest[i] != '\'')
      return refuse_markup(failure, "malformed start tag: attribute value not quoted");
    const std::size_t close = rest.find(rest[i], i + 1);
    if (close == std::string_view::npos) {
      i = rest.size();
      break;
    }
    if (rest.substr(i + 1, close - i - 1).find('<') != std::string_view::npos) {
      return refuse_markup(failure, "'<' in an attribute value");
    }
    i = close;
  }
  return true;
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
  std::size_t at = body.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (at < body.size() && is_xml_space(body[at])) ++at;
  if (at == body.size() || body[at] != '<') return refuse_markup(failure, "not XML: the body does not start with '<'");

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
      return refuse_markup(failure, "more than " + std::to_string(kMaxMarkup) + " elements, comments and instructions");
    }
    if (rest.starts_with("!--")) {
      skip(3, "-->");
      continue;
    }
    if (rest.starts_with("?")) {
      skip(1, "?>");
      continue;
    }
    if (rest.starts_with("!")) return refuse_markup(failure, "a document type declaration is not allowed");
    // A start tag. Its name must begin like an XML name (this also refuses
    // UTF-16 and UCS-4 text, whose second byte is 0).
    const unsigned char first = rest.empty() ? 0 : static_cast<unsigned char>(rest[0]);
    const unsigned char lower = first | 0x20;
    if (!((lower >= 'a' && lower <= 'z') || first == '_' || first == ':' || first >= 0x80)) {
      return refuse_markup(failure, "'<' not followed by an element name");
    }
    std::size_t i = 1;
    if (!scan_start_tag(rest, &i, failure)) return false;
    if (i >= rest.size()) break;  // unclosed: libxml2 reports it
    if (rest[i - 1] != '/' && ++depth > kMaxDepth) {
      return refuse_markup(failure, "elements nested more than " + std::to_string(kMaxDepth) + " deep");
    }
    at += 1 + i + 1;
  }
  return true;
}

// Back to what the parse starts from, after the fast reader declined.
void reset(Capture* capture) {
  for (std::size_t f = 0; f < capture->field_count; ++f) {
    capture->fields[f].seen = false;
    capture->fields[f].text->clear();
  }
  for (std::size_t a = 0; a < capture->attribute_count; ++a) {
    capture->attributes[a].seen = false;
    capture->attributes[a].value->clear();
  }
  capture->root.clear();
}

bool check_root(const Capture& capture, const char* root_name, DecodeFailure* failure) {
  if (capture.root == root_name) return true;
  *failure = {errc::kMalformedXml, std::string("root element is not <") + root_name + ">"};
  return false;
}

// Parses `body`, whose root must be `root_name`, into `capture`.
bool parse(std::string_view body, const char* root_name, Capture* capture, DecodeFailure* failure, XmlReader reader) {
  if (body.size() > static_cast<std::size_t>(INT32_MAX)) {
    *failure = {errc::kTooLarge, "document too large"};
    return false;
  }
  // The fast reader declines every body that check_markup() refuses, so
  // only what it declines is checked.
  if (reader == XmlReader::kFastFirst) {
    if (fast_read(body, capture)) return check_root(*capture, root_name, failure);
    reset(capture);
  }
  if (!check_markup(body, failure)) return false;
  std::string unavailable;
  const XmlParse parsed = libxml2_parse(body, capture, &unavailable);
  if (parsed == XmlParse::kUnavailable) {
    *failure = {errc::kMalformedXml, "this body needs libxml2, and " + unavailable};
    return false;
  }
  if (parsed == XmlParse::kOutOfMemory) {
    *failure = {errc::kMalformedXml, "out of memory"};
    return false;
  }
  const bool well_formed = parsed == XmlParse::kWellFormed;
  if (!capture->refused.empty() || !capture->error.empty()) {
    *failure = {errc::kMalformedXml, !capture->refused.empty() ? capture->refused : capture->error};
    return false;
  }
  if (!well_formed) {
    *failure = {errc::kMalformedXml, "not well-formed XML"};
    return false;
  }
  return check_root(*capture, root_name, failure);
}

// Whether xml_safe_text() would return `text` as it is: printable ASCII,
// tab, LF and CR. Such text (nearly all that is written) is not copied.
bool already_safe(std::string_view text) {
  return plain_text_length(text, TextScan{.carriage_return = true}) == text.size();
}

void append_escaped(std::string* out, std::string_view text, bool in_attribute) {
  std::string safe;
  if (!already_safe(text)) text = safe = xml_safe_text(text);
  std::size_t start = 0;  // of the text not appended yet
  for (std::size_t at = 0; at < text.size(); ++at) {
    const char* entity = nullptr;
    switch (text[at]) {
      case '&': entity = "&amp;"; break;
      case '<': entity = "&lt;"; break;
      case '>': entity = "&gt;"; break;
      case '"': entity = in_attribute ? "&quot;" : nullptr; break;
      default: break;
    }
    if (entity == nullptr) continue;
    out->append(text.substr(start, at - start));
    *out += entity;
    start = at + 1;
  }
  out->append(text.substr(start));
}

void append_cdata(std::string* out, std::string_view text) {
  std::string safe;
  if (!already_safe(text)) text = safe = xml_safe_text(text);
  *out += "<![CDATA[";
  std::size_t start = 0;
  for (std::size_t at = text.find("]]>"); at != std::string_view::npos; at = text.find("]]>", start)) {
    out->append(text.substr(start, at + 2 - start));
    *out += "]]><![CDATA[";
    start = at + 2;
  }
  out->append(text.substr(start));
  *out += "]]>";
}

}  // namespace

bool fast_reader_takes(std::string_view body) {
  Capture capture;
  return fast_read(body, &capture);
}

bool decode_event(std::string_view body, Event* event, DecodeFailure* failure, XmlReader reader) {
  // py-servicebus writes <catgory>; <category> is taken when it is absent.
  std::string spelled_right;
  std::string version;
  Capture::Field fields[] = {{"id", &event->id},           {"token", &event->token},     {"catgory", &event->category},
                             {"category", &spelled_right}, {"service", &event->service}, {"params", &event->params}};
  Capture::Attribute attributes[] = {{"version", &version}};
  Capture capture;
  capture.fields = fields;
  capture.field_count = std::size(fields);
  capture.attributes = attributes;
  capture.attribute_count = std::size(attributes);
  if (!parse(body, "event", &capture, failure, reader)) {
    event->id.clear();  // what was read of it may be cut short
    return false;
  }
  if (!attributes[0].seen) {
    *failure = {errc::kMalformedXml, "<event> has no version attribute"};
    return false;
  }
  if (!fields[2].seen && fields[3].seen) {
    fields[2].seen = true;
    event->category = std::move(spelled_right);
  }
  for (const Capture::Field& field : fields) {
    if (!field.seen && field.name != "category") {
      *failure = {errc::kMissingElement, "<event> has no <" + std::string(field.name) + "> element"};
      return false;
    }
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
  if (!reply.signature.empty()) {
    out += " signature=\"";
    append_escaped(&out, reply.signature, true);
    out += '"';
  }
  out += ">\n    <id>";
  append_escaped(&out, reply.id, false);
  out += "</id>\n    <message>";
  append_cdata(&out, reply.message);
  out += "</message>\n</response>";
  return out;
}

bool decode_reply(std::string_view body, Reply* reply, DecodeFailure* failure, XmlReader reader) {
  std::string status;
  std::string code;
  Capture::Field fields[] = {{"id", &reply->id}, {"message", &reply->message}};
  Capture::Attribute attributes[] = {{"status", &status}, {"code", &code}, {"signature", &reply->signature}};
  Capture capture;
  capture.fields = fields;
  capture.field_count = std::size(fields);
  capture.attributes = attributes;
  capture.attribute_count = std::size(attributes);
  if (!parse(body, "response", &capture, failure, reader)) return false;
  if (!fields[0].seen || !fields[1].seen) {
    *failure = {errc::kMissingElement,
                std::string("<response> has no <") + (!fields[0].seen ? "id" : "message") + "> element"};
    return false;
  }
  reply->error_code.clear();
  if (attributes[0].seen) {
    if (status == "error") reply->error_code = code.empty() ? errc::kUnnamedError : code;
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
      valid =
          !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0) && !(c == 0xef && p[1] == 0xbf && p[2] >= 0xbe);
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
