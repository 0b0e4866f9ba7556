// The py-servicebus wire format (see PROTOCOL.md): the call event and the
// response, as UTF-8 XML. Decoding reads the layout that sbus and
// py-servicebus write with a strict reader of its own, and everything else
// with libxml2 (no DTD, no entity substitution, no network, through SAX
// callbacks that keep the few fields a decode needs; no tree is built),
// which the module sbus-xml.so holds and the first such body loads
// (protocol/xml_libxml2.hpp); encoding writes the text directly.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace sbus {

// Error codes carried in <response status="error" code="...">. Each is
// described in docs/errors.md, which a unit test holds against every
// `namespace errc` (this one and sbus/plugin.hpp's).
namespace errc {
inline constexpr const char* kMalformedXml = "malformed_xml";
inline constexpr const char* kMissingElement = "missing_element";
inline constexpr const char* kInvalidParams = "invalid_params";
inline constexpr const char* kInvalidToken = "invalid_token";
inline constexpr const char* kUnknownService = "unknown_service";
inline constexpr const char* kServiceFailed = "service_failed";
inline constexpr const char* kTooLarge = "message_too_large";
inline constexpr const char* kInterrupted = "interrupted";
inline constexpr const char* kInvalidSignature = "invalid_signature";
inline constexpr const char* kTokenExpired = "token_expired";
inline constexpr const char* kReplayed = "replayed";
// The service has queue_len calls waiting, or queue_bytes of them: try later.
inline constexpr const char* kBusy = "busy";
// The service is configured but cannot serve now: its plugin failed to load
// or start, or it kept crashing its worker and is switched off for a cool-down.
inline constexpr const char* kServiceUnavailable = "service_unavailable";
// The call's deadline (x-sbus-deadline, protocol/deadline.hpp) passed before
// it started, or while it ran: its caller has given up on it.
inline constexpr const char* kDeadlineExceeded = "deadline_exceeded";
// The caller is authenticated but the node's policy does not let it call
// (or send to) this service; the call was not run.
inline constexpr const char* kForbidden = "forbidden";
// The delivery's message id (the AMQP property message_id) is over 128
// bytes or not text; it went to the error queue unrun.
inline constexpr const char* kBadMessageId = "bad_message_id";
// A call whose message id was handled already, whose reply was over
// handled_reply_max_bytes and so not kept: it is not run again.
inline constexpr const char* kReplyNotKept = "reply_not_kept";
// Never sent by sbusd: what the sender reports for an error reply that
// names no code (a sender or agent other than sbus).
inline constexpr const char* kUnnamedError = "error";
// Never sent by sbusd: what Sender::next_reply() reports for a reply it
// cannot decode (Sender::call() throws SenderError kProtocol instead).
inline constexpr const char* kMalformedReply = "malformed_reply";
}  // namespace errc

// The body of a liveness probe and of its answer.
inline constexpr std::string_view kPingBody = "PING";
inline constexpr std::string_view kPongBody = "PONG";

struct Event {
  std::string id;
  std::string token;
  std::string category;
  std::string service;
  std::string params;  // JSON text
};

struct Reply {
  Reply() = default;
  Reply(std::string id_, std::string message_, std::string error_code_ = {})
      : id(std::move(id_)), message(std::move(message_)), error_code(std::move(error_code_)) {}

  std::string id;
  std::string message;     // result JSON text, or error text
  std::string error_code;  // empty: a result
  // <response signature="...">: hmac-sha256-v2 replies (protocol/token.hpp);
  // empty: unsigned.
  std::string signature;
};

// What went wrong in a decode: `code` is one of errc, `detail` a sentence.
struct DecodeFailure {
  std::string code;
  std::string detail;
};

// How a body is read: kFastFirst tries the fast reader and falls back to
// libxml2 for anything outside its subset of XML (see wire_codec.cpp);
// kLibxml2, what the tests and fuzz targets compare it against, skips it.
// Both give the same result for every body.
enum class XmlReader { kFastFirst, kLibxml2 };

// Whether the fast reader takes `body` whole (libxml2 is then not called).
bool fast_reader_takes(std::string_view body);

// Decodes a call event. Accepts both <catgory> (py-servicebus) and
// <category>. On failure returns false and fills `failure`; `event->id` is
// set whenever the <id> element could be read, so that an error reply can
// name it. Does not parse the params JSON.
bool decode_event(std::string_view body, Event* event, DecodeFailure* failure,
                  XmlReader reader = XmlReader::kFastFirst);

// Encodes a call event as py-servicebus agents expect it (<catgory>).
std::string encode_event(const Event& event);

std::string encode_reply(const Reply& reply);

// Decodes a response. A reply without a status attribute whose message is
// one of py-servicebus's own error texts is reported as that error.
bool decode_reply(std::string_view body, Reply* reply, DecodeFailure* failure,
                  XmlReader reader = XmlReader::kFastFirst);

// Text safe for XML 1.0 character data: invalid UTF-8 and control
// characters other than tab, CR and LF replaced by '?'.
std::string xml_safe_text(std::string_view text);

}  // namespace sbus
