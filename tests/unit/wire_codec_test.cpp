// The py-servicebus wire format as PROTOCOL.md describes it: what decodes,
// what encodes, and the errc code of every malformed input.
#include "protocol/wire_codec.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using sbus::DecodeFailure;
using sbus::Event;
using sbus::Reply;

namespace {

// The call as PROTOCOL.md shows it, with every element a test may drop.
struct EventXml {
  std::string root = "<event version=\"1\">";
  std::string id = "<id>42</id>";
  std::string token = "<token>abc</token>";
  std::string category = "<catgory>math</catgory>";
  std::string service = "<service>add</service>";
  std::string params = "<params><![CDATA[[1, 2]]]></params>";

  std::string text() const {
    return "<?xml version=\"1.0\"?>\n" + root + "\n    " + id + "\n    " + token + "\n    " + category + "\n    " +
           service + "\n    " + params + "\n</event>";
  }
};

struct Decoded {
  bool ok = false;
  Event event;
  DecodeFailure failure;
};

Decoded decode(std::string_view body) {
  Decoded d;
  d.ok = sbus::decode_event(body, &d.event, &d.failure);
  return d;
}

struct DecodedReply {
  bool ok = false;
  Reply reply;
  DecodeFailure failure;
};

DecodedReply decode_reply(std::string_view body) {
  DecodedReply d;
  d.ok = sbus::decode_reply(body, &d.reply, &d.failure);
  return d;
}

}  // namespace

TEST_CASE("decode_event reads the id, token, category, service and params of a call", "[wire_codec]") {
  EventXml xml;
  SECTION("with the deployed element name <catgory>") {}
  SECTION("with the README's element name <category>") {
    xml.category = "<category>math</category>";
  }
  const Decoded d = decode(xml.text());
  REQUIRE(d.ok);
  CHECK(d.event.id == "42");
  CHECK(d.event.token == "abc");
  CHECK(d.event.category == "math");
  CHECK(d.event.service == "add");
  CHECK(d.event.params == "[1, 2]");
}

TEST_CASE("decode_event takes params from a CDATA section or from plain text", "[wire_codec]") {
  EventXml xml;
  std::string expected;
  SECTION("CDATA") {
    xml.params = R"(<params><![CDATA[{"a": "<b>&c"}]]></params>)";
    expected = R"({"a": "<b>&c"})";
  }
  SECTION("plain text with escaped characters") {
    xml.params = R"(<params>{"a": "&lt;b&gt;&amp;c"}</params>)";
    expected = R"({"a": "<b>&c"})";
  }
  SECTION("several CDATA sections, as a split ]]> is sent") {
    xml.params = R"(<params><![CDATA["x]]]]><![CDATA[>y"]]></params>)";
    expected = R"("x]]>y")";
  }
  SECTION("empty") {
    xml.params = "<params/>";
    expected = "";
  }
  const Decoded d = decode(xml.text());
  REQUIRE(d.ok);
  CHECK(d.event.params == expected);
}

TEST_CASE("an event with non-ASCII UTF-8 text survives encode and decode unchanged", "[wire_codec]") {
  Event event;
  event.id = "événement-7";
  event.token = "f3c4e891f6389a1f211c7d3fa217827bada51eab";
  event.category = "数学";
  event.service = "сложение";
  event.params = R"(["héllo", "€", "🎉", "日本語"])";

  const std::string body = sbus::encode_event(event);
  const Decoded d = decode(body);
  REQUIRE(d.ok);
  CHECK(d.event.id == event.id);
  CHECK(d.event.token == event.token);
  CHECK(d.event.category == event.category);
  CHECK(d.event.service == event.service);
  CHECK(d.event.params == event.params);
}

TEST_CASE("encode_event writes <catgory> for py-servicebus agents and decodes back", "[wire_codec]") {
  Event event{"1", "tok", "math", "add", "[1, 2]"};
  const std::string body = sbus::encode_event(event);
  CHECK_THAT(body, Contains("<catgory>math</catgory>"));
  CHECK_THAT(body, !Contains("<category>"));
  CHECK_THAT(body, Contains("<event version=\"1\">"));
  CHECK_THAT(body, Contains("<params><![CDATA[[1, 2]]]></params>"));

  const Decoded d = decode(body);
  REQUIRE(d.ok);
  CHECK(d.event.id == "1");
  CHECK(d.event.token == "tok");
  CHECK(d.event.category == "math");
  CHECK(d.event.service == "add");
  CHECK(d.event.params == "[1, 2]");
}

TEST_CASE("encode_event escapes <, & and > in the id and the other text elements", "[wire_codec]") {
  Event event{"a<b&c>d", "t&k", "c<at", "s>v", R"({"k": "]]>"})"};
  const std::string body = sbus::encode_event(event);
  CHECK_THAT(body, Contains("<id>a&lt;b&amp;c&gt;d</id>"));
  CHECK_THAT(body, Contains("<token>t&amp;k</token>"));

  const Decoded d = decode(body);
  REQUIRE(d.ok);
  CHECK(d.event.id == event.id);
  CHECK(d.event.token == event.token);
  CHECK(d.event.category == event.category);
  CHECK(d.event.service == event.service);
  CHECK(d.event.params == event.params);
}

TEST_CASE("encode_reply splits the CDATA end marker across sections so the message decodes exactly", "[wire_codec]") {
  std::string message;
  SECTION("once in the middle") {
    message = "before]]>after";
  }
  SECTION("several times") {
    message = "a]]>b]]>c]]>]]>d";
  }
  SECTION("at the start") {
    message = "]]>start";
  }
  SECTION("at the end") {
    message = "end]]>";
  }
  SECTION("alone") {
    message = "]]>";
  }
  SECTION("with extra brackets around it") {
    message = "]]]]>>]]]>";
  }
  SECTION("as JSON text") {
    message = R"({"x": ["]]>", "<![CDATA["]})";
  }

  const std::string body = sbus::encode_reply(Reply{"9", message, ""});
  const DecodedReply d = decode_reply(body);
  REQUIRE(d.ok);
  CHECK(d.reply.id == "9");
  CHECK(d.reply.message == message);
  CHECK(d.reply.error_code.empty());
}

TEST_CASE("encode_reply of a result says status ok and keeps id and message", "[wire_codec]") {
  const std::string body = sbus::encode_reply(Reply{"a<&>b", "3", ""});
  CHECK_THAT(body, Contains("status=\"ok\""));
  CHECK_THAT(body, Contains("<id>a&lt;&amp;&gt;b</id>"));
  CHECK_THAT(body, Contains("<message><![CDATA[3]]></message>"));

  const DecodedReply d = decode_reply(body);
  REQUIRE(d.ok);
  CHECK(d.reply.id == "a<&>b");
  CHECK(d.reply.message == "3");
  CHECK(d.reply.error_code.empty());
}

TEST_CASE("a signed reply carries its signature in an attribute that both readers give back", "[wire_codec]") {
  Reply reply("e-1", "42");
  reply.signature = "hmac-sha256-v2:" + std::string(64, 'a');
  const std::string body = sbus::encode_reply(reply);
  CHECK_THAT(body, Contains("<response status=\"ok\" signature=\"hmac-sha256-v2:aaaa"));
  CHECK(sbus::fast_reader_takes(body));
  for (const sbus::XmlReader reader : {sbus::XmlReader::kFastFirst, sbus::XmlReader::kLibxml2}) {
    Reply decoded;
    DecodeFailure failure;
    REQUIRE(sbus::decode_reply(body, &decoded, &failure, reader));
    CHECK(decoded.signature == reply.signature);
    CHECK(decoded.message == "42");
  }
  Reply unsigned_reply;
  DecodeFailure failure;
  REQUIRE(sbus::decode_reply(sbus::encode_reply(Reply("e-2", "1")), &unsigned_reply, &failure));
  CHECK(unsigned_reply.signature.empty());
}

TEST_CASE("escaping: a quote only in attributes, every special character wherever it stands", "[wire_codec]") {
  const std::string body = sbus::encode_reply(Reply{"\"q\"&", "m", "a\"b<c>&d"});
  CHECK_THAT(body, Contains("code=\"a&quot;b&lt;c&gt;&amp;d\""));
  CHECK_THAT(body, Contains("<id>\"q\"&amp;</id>"));
  const DecodedReply d = decode_reply(body);
  REQUIRE(d.ok);
  CHECK(d.reply.id == "\"q\"&");
  CHECK(d.reply.error_code == "a\"b<c>&d");
  CHECK_THAT(sbus::encode_event(Event{"&<>", "t", "c", "s", "[]"}), Contains("<id>&amp;&lt;&gt;</id>"));
}

TEST_CASE("an error reply carries status error, its code, and the text in <message>", "[wire_codec]") {
  const std::string body =
      sbus::encode_reply(Reply{"5", "Cannot Find RPC Service: math.sub", sbus::errc::kUnknownService});
  CHECK_THAT(body, Contains("status=\"error\""));
  CHECK_THAT(body, Contains("code=\"unknown_service\""));
  CHECK_THAT(body, Contains("Cannot Find RPC Service: math.sub"));

  const DecodedReply d = decode_reply(body);
  REQUIRE(d.ok);
  CHECK(d.reply.id == "5");
  CHECK(d.reply.message == "Cannot Find RPC Service: math.sub");
  CHECK(d.reply.error_code == sbus::errc::kUnknownService);
}

TEST_CASE("decode_reply reads a py-servicebus reply, which has no status attribute", "[wire_codec]") {
  auto reply_body = [](std::string_view message) {
    return "<?xml version=\"1.0\"?>\n<response>\n    <id>17</id>\n    <message><![CDATA[" + std::string(message) +
           "]]></message>\n</response>";
  };
  SECTION("a result is not an error") {
    const DecodedReply d = decode_reply(reply_body("3"));
    REQUIRE(d.ok);
    CHECK(d.reply.id == "17");
    CHECK(d.reply.message == "3");
    CHECK(d.reply.error_code.empty());
  }
  SECTION("'Token not valid!' is invalid_token") {
    const DecodedReply d = decode_reply(reply_body("Token not valid!"));
    REQUIRE(d.ok);
    CHECK(d.reply.message == "Token not valid!");
    CHECK(d.reply.error_code == sbus::errc::kInvalidToken);
  }
  SECTION("'Cannot Find RPC Service: a.b' is unknown_service") {
    const DecodedReply d = decode_reply(reply_body("Cannot Find RPC Service: a.b"));
    REQUIRE(d.ok);
    CHECK(d.reply.message == "Cannot Find RPC Service: a.b");
    CHECK(d.reply.error_code == sbus::errc::kUnknownService);
  }
  SECTION("a message in plain text instead of CDATA") {
    const DecodedReply d =
        decode_reply("<?xml version=\"1.0\"?><response><id>1</id><message>a &amp; b</message></response>");
    REQUIRE(d.ok);
    CHECK(d.reply.message == "a & b");
    CHECK(d.reply.error_code.empty());
  }
}

TEST_CASE("decode_event takes the first element of each name, and only the text directly in it", "[wire_codec]") {
  const Decoded d = decode(
      "<event version=\"1\"><id>a<!-- note -->b<x>not this</x>c</id><id>second</id>"
      "<token>t &amp; &#65;</token><catgory>math</catgory><category>other</category>"
      "<service>add</service><params><![CDATA[[1,]]>2]</params></event>");
  REQUIRE(d.ok);
  CHECK(d.event.id == "abc");
  CHECK(d.event.token == "t & A");
  CHECK(d.event.category == "math");
  CHECK(d.event.service == "add");
  CHECK(d.event.params == "[1,2]");
}

TEST_CASE("decode_event takes <category> when there is no <catgory>, and namespaced names", "[wire_codec]") {
  const Decoded d = decode(
      "<e:event xmlns:e=\"urn:x\" version=\"1\"><e:id>1</e:id><token>t</token>"
      "<category>math</category><service>add</service><params>[1]</params></e:event>");
  REQUIRE(d.ok);
  CHECK(d.event.id == "1");
  CHECK(d.event.category == "math");
}

TEST_CASE("decode_reply decodes entities in the status and code attributes", "[wire_codec]") {
  const DecodedReply d = decode_reply(
      "<response status=\"&#101;rror\" code=\"a&amp;b&lt;c&#38;d\"><id>1</id><message>m</message></response>");
  REQUIRE(d.ok);
  CHECK(d.reply.error_code == "a&b<c&d");
}

TEST_CASE("a call cut short inside its id leaves no id to name in the error reply", "[wire_codec]") {
  Event event;
  DecodeFailure failure;
  CHECK_FALSE(sbus::decode_event("<event version=\"1\"><id>abc&bogus;def</id></event>", &event, &failure));
  CHECK(failure.code == sbus::errc::kMalformedXml);
  CHECK(event.id.empty());
}

TEST_CASE("decode_reply refuses what is not a response", "[wire_codec]") {
  std::string body;
  std::string code;
  SECTION("not XML") {
    body = "PONG";
    code = sbus::errc::kMalformedXml;
  }
  SECTION("wrong root") {
    body = "<event version=\"1\"><id>1</id><message>x</message></event>";
    code = sbus::errc::kMalformedXml;
  }
  SECTION("no <id>") {
    body = "<response><message>x</message></response>";
    code = sbus::errc::kMissingElement;
  }
  SECTION("no <message>") {
    body = "<response><id>1</id></response>";
    code = sbus::errc::kMissingElement;
  }
  const DecodedReply d = decode_reply(body);
  CHECK_FALSE(d.ok);
  CHECK(d.failure.code == code);
  CHECK_FALSE(d.failure.detail.empty());
}

TEST_CASE("decode_event refuses text that is not well-formed XML with malformed_xml", "[wire_codec]") {
  std::string body;
  SECTION("plain text") {
    body = "hello, world";
  }
  SECTION("the PING probe") {
    body = "PING";
  }
  SECTION("an empty body") {
    body = "";
  }
  SECTION("JSON") {
    body = R"({"id": 1})";
  }
  SECTION("an unclosed element") {
    body = "<event version=\"1\"><id>1</id>";
  }
  SECTION("an undefined entity") {
    EventXml xml;
    xml.id = "<id>&undefined;</id>";
    body = xml.text();
  }
  const Decoded d = decode(body);
  CHECK_FALSE(d.ok);
  CHECK(d.failure.code == sbus::errc::kMalformedXml);
  CHECK_FALSE(d.failure.detail.empty());
}

TEST_CASE("decode_event refuses an event whose root is wrong or has no version", "[wire_codec]") {
  EventXml xml;
  SECTION("root <response>") {
    const Decoded d = decode(
        "<?xml version=\"1.0\"?><response version=\"1\"><id>42</id><token>t</token>"
        "<catgory>m</catgory><service>s</service><params>[]</params></response>");
    CHECK_FALSE(d.ok);
    CHECK(d.failure.code == sbus::errc::kMalformedXml);
    CHECK_THAT(d.failure.detail, Contains("<event>"));
  }
  SECTION("root <event> without a version attribute") {
    xml.root = "<event>";
    const Decoded d = decode(xml.text());
    CHECK_FALSE(d.ok);
    CHECK(d.failure.code == sbus::errc::kMalformedXml);
    CHECK_THAT(d.failure.detail, Contains("version"));
    // The id is known, so the error reply can name the call.
    CHECK(d.event.id == "42");
  }
}

TEST_CASE("decode_event reports each missing element as missing_element and names it", "[wire_codec]") {
  EventXml xml;
  std::string element;
  SECTION("id") {
    xml.id.clear();
    element = "<id>";
  }
  SECTION("token") {
    xml.token.clear();
    element = "<token>";
  }
  SECTION("catgory") {
    xml.category.clear();
    element = "<catgory>";
  }
  SECTION("service") {
    xml.service.clear();
    element = "<service>";
  }
  SECTION("params") {
    xml.params.clear();
    element = "<params>";
  }
  const Decoded d = decode(xml.text());
  CHECK_FALSE(d.ok);
  CHECK(d.failure.code == sbus::errc::kMissingElement);
  CHECK_THAT(d.failure.detail, Contains(element));
  if (element != "<id>") {
    INFO("the id element exists, so the error reply can name it");
    CHECK(d.event.id == "42");
  }
}

TEST_CASE("decode_event refuses a DOCTYPE and does not expand its entities", "[wire_codec]") {
  std::string body;
  SECTION("a small billion-laughs DTD used in the id") {
    body =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE event [\n"
        "  <!ENTITY a \"laugh\">\n"
        "  <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
        "  <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
        "]>\n"
        "<event version=\"1\"><id>&c;</id><token>t</token><catgory>m</catgory>"
        "<service>s</service><params>&c;</params></event>";
  }
  SECTION("an internal entity in the params") {
    body =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE event [<!ENTITY e \"injected\">]>\n"
        "<event version=\"1\"><id>1</id><token>t</token><catgory>m</catgory>"
        "<service>s</service><params>&e;</params></event>";
  }
  SECTION("a DOCTYPE without entities") {
    body =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE event>\n"
        "<event version=\"1\"><id>1</id><token>t</token><catgory>m</catgory>"
        "<service>s</service><params>[]</params></event>";
  }
  const Decoded d = decode(body);
  CHECK_FALSE(d.ok);
  CHECK(d.failure.code == sbus::errc::kMalformedXml);
  CHECK_THAT(d.event.id, !Contains("laugh"));
  CHECK_THAT(d.event.params, !Contains("laugh"));
  CHECK_THAT(d.event.params, !Contains("injected"));
}

TEST_CASE("xml_safe_text keeps valid UTF-8 and replaces what XML 1.0 cannot hold with '?'", "[wire_codec]") {
  SECTION("ASCII, tab, CR and LF are kept") {
    CHECK(sbus::xml_safe_text("a b\tc\r\nd") == "a b\tc\r\nd");
  }
  SECTION("valid multi-byte UTF-8 is kept") {
    CHECK(sbus::xml_safe_text("é € 🎉 日本") == "é € 🎉 日本");
  }
  SECTION("control characters are replaced") {
    CHECK(sbus::xml_safe_text(std::string_view("a\x01"
                                               "b\x1f"
                                               "c\x7f"
                                               "d",
                                               7)) == "a?b?c?d");
    CHECK(sbus::xml_safe_text(std::string_view("x\0y", 3)) == "x?y");
  }
  SECTION("invalid UTF-8 is replaced byte by byte") {
    CHECK(sbus::xml_safe_text("a\xff"
                              "b") == "a?b");
    CHECK(sbus::xml_safe_text("\x80") == "?");
    CHECK(sbus::xml_safe_text("\xc0\xaf") == "??");            // overlong '/'
    CHECK(sbus::xml_safe_text("\xe2\x82") == "??");            // truncated '€'
    CHECK(sbus::xml_safe_text("\xed\xa0\x80") == "???");       // UTF-16 surrogate
    CHECK(sbus::xml_safe_text("\xf4\x90\x80\x80") == "????");  // above U+10FFFF
  }
  SECTION("an encoded event with bad bytes still decodes") {
    Event event{
        "i\x01"
        "d",
        "t", "c", "s", "\"\xff\""};
    const Decoded d = decode(sbus::encode_event(event));
    REQUIRE(d.ok);
    CHECK(d.event.id == "i?d");
    CHECK(d.event.params == "\"?\"");
  }
}

TEST_CASE("xml_safe_text replaces the noncharacters U+FFFE and U+FFFF, which XML 1.0 forbids", "[wire_codec]") {
  SECTION("in the text itself") {
    for (const char* text : {"a\xef\xbf\xbe"
                             "b",
                             "a\xef\xbf\xbf"
                             "b"}) {
      const std::string safe = sbus::xml_safe_text(text);
      CHECK_THAT(safe, StartsWith("a?") && EndsWith("?b"));
      CHECK(safe.find_first_not_of("ab?") == std::string::npos);
    }
    CHECK(sbus::xml_safe_text("\xef\xbf\xbd") == "\xef\xbf\xbd");  // U+FFFD is allowed
  }
  SECTION("so that a reply holding U+FFFF still decodes") {
    const DecodedReply d = decode_reply(sbus::encode_reply(Reply{"1", "[\"\xef\xbf\xbf\"]", ""}));
    INFO(d.failure.detail);
    CHECK(d.ok);
  }
  SECTION("so that an event holding U+FFFE still decodes") {
    const Decoded d = decode(sbus::encode_event(Event{"1", "t", "c", "s", "\"\xef\xbf\xbe\""}));
    INFO(d.failure.detail);
    CHECK(d.ok);
  }
}

TEST_CASE("a call of 1 MB decodes whole, and so do the calls on either side of it", "[wire_codec]") {
  // The parser context is kept per thread; after a large body it drops its
  // copy of the input, and the next parse must not notice.
  EventXml small;
  const Decoded before = decode(small.text());
  REQUIRE(before.ok);

  EventXml large;
  const std::string items = "[" + std::string(1024 * 1024, '1') + "]";
  large.params = "<params><![CDATA[" + items + "]]></params>";
  const Decoded big = decode(large.text());
  REQUIRE(big.ok);
  CHECK(big.event.params == items);

  const Decoded after = decode(small.text());
  REQUIRE(after.ok);
  CHECK(after.event.params == "[1, 2]");
  CHECK(after.event.id == "42");
}

TEST_CASE("decode_event refuses content after the root element and a body cut short in any construct", "[wire_codec]") {
  const std::string whole = EventXml().text();
  std::string body;
  SECTION("text after the root") {
    body = whole + "junk";
  }
  SECTION("a second root") {
    body = whole + "<event version=\"1\"/>";
  }
  SECTION("cut inside a comment") {
    body = whole + "<!-- not closed";
  }
  SECTION("cut inside a CDATA section") {
    body = whole.substr(0, whole.find("[1, 2]"));
  }
  SECTION("cut inside a start tag") {
    body = whole.substr(0, whole.find("version") + 4);
  }
  const Decoded d = decode(body);
  INFO(body);
  CHECK_FALSE(d.ok);
  CHECK(d.failure.code == sbus::errc::kMalformedXml);
}

namespace {

std::string repeated(std::string_view text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

// Every field of a decode, for comparing the two readers.
std::string describe_event_decode(std::string_view body, sbus::XmlReader reader) {
  Event event;
  DecodeFailure failure;
  const bool ok = sbus::decode_event(body, &event, &failure, reader);
  return std::string(ok ? "ok" : "failed") + "|" + event.id + "|" + event.token + "|" + event.category + "|" +
         event.service + "|" + event.params + "|" + failure.code + "|" + failure.detail;
}

std::string describe_reply_decode(std::string_view body, sbus::XmlReader reader) {
  Reply reply;
  DecodeFailure failure;
  const bool ok = sbus::decode_reply(body, &reply, &failure, reader);
  return std::string(ok ? "ok" : "failed") + "|" + reply.id + "|" + reply.message + "|" + reply.error_code + "|" +
         failure.code + "|" + failure.detail;
}

}  // namespace

TEST_CASE("the fast reader takes what sbus and py-servicebus write", "[wire_codec][fast_reader]") {
  CHECK(sbus::fast_reader_takes(sbus::encode_event(Event{"host-1-7", "0123abcd", "math", "add", "[1, 2]"})));
  CHECK(sbus::fast_reader_takes(sbus::encode_event(Event{"a<b&c", "t", "c", "s", "{\"k\": \"]]>\"}"})) == false);
  CHECK(sbus::fast_reader_takes(EventXml().text()));
  CHECK(sbus::fast_reader_takes(sbus::encode_reply(Reply{"host-1-7", "3", ""})));
  CHECK(sbus::fast_reader_takes(sbus::encode_reply(Reply{"host-1-7", "no such service", "unknown_service"})));
  CHECK(sbus::fast_reader_takes(
      "<?xml version=\"1.0\" ?>\n<response><id>1</id><message>Token not valid!</message></response>"));
  SECTION("CDATA split around ]]> by the encoder") {
    const std::string body = sbus::encode_reply(Reply{"1", "a]]>b", ""});
    CHECK(sbus::fast_reader_takes(body));
    CHECK(describe_reply_decode(body, sbus::XmlReader::kFastFirst) ==
          describe_reply_decode(body, sbus::XmlReader::kLibxml2));
  }
}

TEST_CASE("the fast reader and libxml2 read every body alike, and the fast reader declines what it cannot read exactly",
          "[wire_codec][fast_reader]") {
  const std::string whole = EventXml().text();
  const auto with = [](std::string EventXml::*part, std::string text) {
    EventXml xml;
    xml.*part = std::move(text);
    return xml.text();
  };
  // {body, whether the fast reader must take it}
  const std::vector<std::pair<std::string, bool>> bodies = {
      {whole, true},
      {whole.substr(whole.find('<', 1)), true},  // no XML declaration
      {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + whole.substr(whole.find('\n')), true},
      {with(&EventXml::root, "<event version='2' extra=\"x\" >"), true},
      {with(&EventXml::root, "<event\tversion = \"1\"\n>"), true},
      {with(&EventXml::id, "<id/>"), true},
      {with(&EventXml::id, "<id></id>"), true},
      {with(&EventXml::id, "<id a=\"1\">x</id ><id>second</id>"), true},
      {with(&EventXml::id, "<id>> a > b</id>"), true},
      {with(&EventXml::id, "<other-name.x>7</other-name.x><id>8</id>"), true},
      {with(&EventXml::params, "<params>  <![CDATA[[1]]]>  <![CDATA[,2]]>tail</params>"), true},
      {with(&EventXml::params, "<params><![CDATA[a]]b]]]]><![CDATA[>c]]></params>"), true},
      {with(&EventXml::category, "<category>math</category>"), true},
      {whole + "\n\t ", true},
      // Declined: libxml2 reads these (or refuses them) its own way.
      {" " + whole, false},
      {"<?xml version=\"1.1\"?>" + whole.substr(whole.find('\n')), false},
      {"<?xml version=\"1.0\" standalone=\"yes\"?>" + whole.substr(whole.find('\n')), false},
      {with(&EventXml::id, "<id>a&amp;b</id>"), false},
      {with(&EventXml::id, "<id>&#65;</id>"), false},
      {with(&EventXml::id, "<id>a]]>b</id>"), false},
      {with(&EventXml::id, "<id>\xc3\xa9t\xc3\xa9</id>"), false},
      {with(&EventXml::id, "<id>bad \xff byte</id>"), false},
      {with(&EventXml::id, "<id>a\r\nb</id>"), false},
      {with(&EventXml::id, "<id>a<!-- c -->b</id>"), false},
      // Bytes beyond printable ASCII, tab and LF, wherever they stand.
      {with(&EventXml::params, "<params><![CDATA[a\tb\nc]]></params>"), true},
      {with(&EventXml::params, "<params><![CDATA[\xc3\xa9]]></params>"), false},
      {with(&EventXml::params, "<params><![CDATA[a\rb]]></params>"), false},
      {with(&EventXml::params, std::string("<params><![CDATA[a\0b]]></params>", 32)), false},
      {with(&EventXml::root, "<event version=\"\xc3\xa9\">"), false},
      {with(&EventXml::root, "<event version=\"a\x01\">"), false},
      {with(&EventXml::id, "<id>1</id>\r\n"), false},
      {with(&EventXml::id, "<id>1</id>\x7f"), false},
      {whole + "\x01", false},
      {with(&EventXml::id, "<id>a<?pi x?>b</id>"), false},
      {with(&EventXml::id, "<id><b>deep</b></id>"), false},
      {with(&EventXml::id, "<x:id xmlns:x=\"urn:x\">1</x:id>"), false},
      {with(&EventXml::id, "<id>1</idd>"), false},
      {with(&EventXml::id, "<id>1"), false},
      {with(&EventXml::id, "<1id>1</1id>"), false},
      {with(&EventXml::id, "<id a=\"1\" a=\"2\">1</id>"), false},
      {with(&EventXml::root, "<event version=\"1\" version=\"2\">"), false},
      {with(&EventXml::root, "<event version=\"a&amp;b\">"), false},
      {with(&EventXml::root, "<event version=\"a\tb\">"), false},
      {with(&EventXml::root, "<event version=\"1\"other=\"2\">"), false},
      {with(&EventXml::root, "<event version=1>"), false},
      {with(&EventXml::root, "<event version=\"1\">text beside"), false},
      {with(&EventXml::root, "<ev:event xmlns:ev=\"urn:x\" version=\"1\">"), false},
      {with(&EventXml::params, "<params><![CDATA[[1, 2]</params>"), false},
      {whole + "<!-- after -->", false},
      {whole + "junk", false},
      {whole + "<event version=\"1\"/>", false},
      {"<event version=\"1\"/>", true},
      // As many start tags as check_markup() lets through, and one more.
      {"<response>" + repeated("<x/>", 255) + "</response>", true},
      {"<response>" + repeated("<x/>", 256) + "</response>", false},
      {"<?xml version=\"1.0\"?><response>" + repeated("<x/>", 255) + "</response>", false},
      {"<response/>", true},
      {"", false},
      {"PING", false},
      // Found by the fuzzers: the root's '<' missing, and nothing after the declaration.
      {"<?xml version=\"1.0\"?>\n|response>\n<id>1</id><message><![CDATA[3]]></message>\n</response>", false},
      {"Xevent version=\"1\"/>", false},
      {"<?xml version=\"1.0\" ?>\t", false},
  };
  for (const auto& [body, fast] : bodies) {
    INFO(body);
    CHECK(sbus::fast_reader_takes(body) == fast);
    CHECK(describe_event_decode(body, sbus::XmlReader::kFastFirst) ==
          describe_event_decode(body, sbus::XmlReader::kLibxml2));
    CHECK(describe_reply_decode(body, sbus::XmlReader::kFastFirst) ==
          describe_reply_decode(body, sbus::XmlReader::kLibxml2));
  }
}
