#include "protocol/xml_capture.hpp"
#include "protocol/xml_text_scan.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace sbus {
namespace {

// The fast reader: the layout that sbus and py-servicebus write, read
// without libxml2 (whose parse was most of the instructions of a call). It
// takes a body only when all of it lies within a subset of XML that it
// reads exactly as libxml2 does: printable ASCII, tab and LF; an optional
// XML declaration of a fixed form; a root element whose children hold only
// text and CDATA sections, with blanks around them; plain attributes. Any
// reference, comment, processing instruction, namespace prefix, deeper
// element, CR (which libxml2 rewrites) or anything libxml2 would refuse
// makes it decline, and libxml2 parses the body instead, errors included.
// The unit tests and the fuzz targets check that both read the same fields
// from every body the fast reader takes.
class FastReader {
 public:
  FastReader(std::string_view body, Capture* capture) : text_(body), capture_(capture) {}

  // True when it took the body: `capture` then holds what libxml2's parse
  // would have left there. False: `capture` is to be reset and the body
  // parsed by libxml2.
  //
  // Each byte is looked at by the one step that reads it, and every step
  // declines what is not printable ASCII, tab or LF, where it may stand.
  bool read() {
    if (at("<?xml")) {
      static constexpr std::string_view kDeclarations[] = {"<?xml version=\"1.0\"?>", "<?xml version=\"1.0\" ?>",
                                                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                                                           "<?xml version=\"1.0\" encoding=\"utf-8\"?>"};
      const auto* known = std::find_if(std::begin(kDeclarations), std::end(kDeclarations),
                                       [this](std::string_view declaration) { return at(declaration); });
      if (known == std::end(kDeclarations)) return false;
      at_ += known->size();
      ++markup_;
    }
    skip_blanks();
    std::string_view root;
    bool empty = false;
    if (!start_tag(&root, &empty, true)) return false;
    capture_->root.assign(root);
    while (!empty) {
      skip_blanks();
      if (at("</")) {
        if (!end_tag(root)) return false;
        break;
      }
      if (!at('<') || at("<!") || at("<?")) return false;  // text, a comment or a PI beside the children
      if (!child()) return false;
    }
    skip_blanks();
    return at_ == text_.size();
  }

 private:
  bool at(std::string_view what) const {
    return text_.size() - at_ >= what.size() && std::memcmp(text_.data() + at_, what.data(), what.size()) == 0;
  }
  bool at(char c) const { return at_ < text_.size() && text_[at_] == c; }

  static bool printable(char c) { return c >= 0x20 && c <= 0x7e; }  // ASCII; false for bytes over 0x7f
  static bool all_text(std::string_view text) { return plain_text_length(text, TextScan{}) == text.size(); }

  void skip_blanks() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n')) ++at_;
  }

  bool name(std::string_view* out) {
    const auto is_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    const auto is_next = [&](char c) { return is_first(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; };
    const std::size_t start = at_;
    if (at_ == text_.size() || !is_first(text_[at_])) return false;
    while (at_ < text_.size() && is_next(text_[at_])) ++at_;
    *out = text_.substr(start, at_ - start);
    return true;
  }

  // A start tag at '<'. Attributes are kept for the root only.
  bool start_tag(std::string_view* tag, bool* empty, bool root) {
    if (!at('<') || ++markup_ > kMaxMarkup) return false;  // check_markup() refuses the flood
    ++at_;
    if (!name(tag)) return false;
    std::string_view seen[kMaxAttributes];
    std::size_t seen_count = 0;
    for (;;) {
      const std::size_t before = at_;
      skip_blanks();
      if (at('>') || at("/>")) {
        *empty = at("/>");
        at_ += *empty ? 2 : 1;
        return true;
      }
      std::string_view attribute;
      if (at_ == before || !name(&attribute)) return false;
      for (std::size_t i = 0; i < seen_count; ++i) {
        if (seen[i] == attribute) return false;  // libxml2 refuses the duplicate
      }
      if (seen_count == kMaxAttributes) return false;
      seen[seen_count++] = attribute;
      skip_blanks();
      if (!at('=')) return false;
      ++at_;
      skip_blanks();
      if (at_ == text_.size() || (text_[at_] != '"' && text_[at_] != '\'')) return false;
      const std::size_t close = text_.find(text_[at_], at_ + 1);
      if (close == std::string_view::npos) return false;
      const std::string_view value = text_.substr(at_ + 1, close - at_ - 1);
      // libxml2 decodes references and turns tab and LF into spaces.
      if (!std::all_of(value.begin(), value.end(), [](char c) { return printable(c) && c != '<' && c != '&'; })) {
        return false;
      }
      at_ = close + 1;
      if (!root) continue;
      for (std::size_t w = 0; w < capture_->attribute_count; ++w) {
        Capture::Attribute& wanted = capture_->attributes[w];
        if (!wanted.seen && attribute == wanted.name) {
          wanted.seen = true;
          wanted.value->assign(value);
        }
      }
    }
  }

  bool end_tag(std::string_view tag) {
    at_ += 2;
    std::string_view closing;
    if (!name(&closing) || closing != tag) return false;
    skip_blanks();
    if (!at('>')) return false;
    ++at_;
    return true;
  }

  // A child of the root: its text goes to the first wanted field of its
  // name not seen yet.
  bool child() {
    std::string_view tag;
    bool empty = false;
    if (!start_tag(&tag, &empty, false)) return false;
    std::string* text = nullptr;
    for (std::size_t f = 0; f < capture_->field_count; ++f) {
      Capture::Field& field = capture_->fields[f];
      if (!field.seen && tag == field.name) {
        field.seen = true;
        field.text->clear();
        text = field.text;
        break;
      }
    }
    if (empty) return true;
    for (;;) {
      if (at("<![CDATA[")) {
        const std::size_t end = text_.find("]]>", at_ + 9);
        if (end == std::string_view::npos) return false;
        const std::string_view section = text_.substr(at_ + 9, end - at_ - 9);
        if (!all_text(section)) return false;
        if (text != nullptr) text->append(section);
        at_ = end + 3;
        continue;
      }
      if (at("</")) return end_tag(tag);
      // Up to the next '<', which is to be of a CDATA section or the end tag.
      const std::size_t end = at_ + plain_text_length(text_.substr(at_), TextScan{.markup = true});
      if (end == text_.size() || text_[end] != '<') return false;
      const std::string_view run = text_.substr(at_, end - at_);
      if (run.empty() || run.find("]]>") != std::string_view::npos) return false;  // '<' not of a CDATA or end tag
      if (text != nullptr) text->append(run);
      at_ = end;
    }
  }

  std::string_view text_;
  std::size_t at_ = 0;
  int markup_ = 0;  // the declaration and start tags so far, as check_markup() counts them
  Capture* capture_;
};

}  // namespace

bool fast_read(std::string_view body, Capture* capture) {
  return FastReader(body, capture).read();
}

}  // namespace sbus
