// The compat token of PROTOCOL.md: hex(SHA-1(SECRET " - " DATE)), valid for
// the receiver's yesterday, today and tomorrow.
#include "protocol/token.hpp"

#include "base/replay_cache.hpp"
#include "protocol/wire_codec.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

namespace {

using namespace std::chrono;

// Sets TZ for the lifetime of the object, so that "local date" is
// deterministic, and restores the previous value afterwards.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTimeZone() {
    if (old_) {
      ::setenv("TZ", old_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  ScopedTimeZone(const ScopedTimeZone&) = delete;
  ScopedTimeZone& operator=(const ScopedTimeZone&) = delete;

 private:
  std::optional<std::string> old_;
};

system_clock::time_point utc(year_month_day day, hours hour = hours(12), minutes minute = minutes(0)) {
  return sys_days(day) + hour + minute;
}

constexpr const char* kSecret = "secret token";
constexpr const char* kToken22 = "f3c4e891f6389a1f211c7d3fa217827bada51eab";
constexpr const char* kToken23 = "e7ea0d27ee691122c648a3c259c0a2aa0df621d9";
constexpr const char* kToken24 = "1fee7331024700449d007cecd79bee7b2c202c4e";

}  // namespace

TEST_CASE("compat_token matches the py-servicebus vectors of PROTOCOL.md", "[token]") {
  CHECK(sbus::compat_token(kSecret, "2026-11-22") == kToken22);
  CHECK(sbus::compat_token(kSecret, "2026-11-23") == kToken23);
  CHECK(sbus::compat_token(kSecret, "2026-11-24") == kToken24);
}

TEST_CASE("compat_token is 40 lowercase hex digits and depends on secret and date", "[token]") {
  const std::string token = sbus::compat_token("another secret", "2026-11-23");
  CHECK(token.size() == 40);
  CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(token != kToken23);
  CHECK(sbus::compat_token(kSecret, "2026-11-25") != kToken24);
}

TEST_CASE("compat_token_valid accepts the tokens of yesterday, today and tomorrow only", "[token]") {
  ScopedTimeZone tz("UTC");
  using std::chrono::November;

  SECTION("at noon on the 23rd") {
    const auto now = utc(2026y / November / 23);
    CHECK(sbus::compat_token_valid(kSecret, kToken22, now));
    CHECK(sbus::compat_token_valid(kSecret, kToken23, now));
    CHECK(sbus::compat_token_valid(kSecret, kToken24, now));
  }
  SECTION("just after midnight and just before the next one") {
    CHECK(sbus::compat_token_valid(kSecret, kToken22, utc(2026y / November / 23, hours(0), minutes(1))));
    CHECK(sbus::compat_token_valid(kSecret, kToken24, utc(2026y / November / 23, hours(23), minutes(59))));
  }
  SECTION("two days off either way is refused") {
    CHECK_FALSE(sbus::compat_token_valid(kSecret, kToken22, utc(2026y / November / 24)));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, kToken24, utc(2026y / November / 22)));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, kToken23, utc(2026y / November / 25)));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, kToken23, utc(2026y / November / 21)));
  }
  SECTION("a token made with another secret is refused") {
    const auto now = utc(2026y / November / 23);
    CHECK_FALSE(sbus::compat_token_valid(kSecret, sbus::compat_token("secret token2", "2026-11-23"), now));
    CHECK_FALSE(sbus::compat_token_valid("other secret", kToken23, now));
  }
  SECTION("empty, truncated and extended tokens are refused") {
    const auto now = utc(2026y / November / 23);
    const std::string token = kToken23;
    CHECK_FALSE(sbus::compat_token_valid(kSecret, "", now));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, token.substr(0, 39), now));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, token.substr(0, 20), now));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, token + "0", now));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, "2026-11-23", now));
  }
}

TEST_CASE("CompatTokens accepts the same three days and moves on to the next day within a minute", "[token]") {
  ScopedTimeZone tz("UTC");
  using std::chrono::November;
  sbus::CompatTokens tokens(kSecret);
  const auto noon = utc(2026y / November / 23);
  CHECK(tokens.today(noon) == kToken23);
  CHECK(tokens.valid(kToken22, noon));
  CHECK(tokens.valid(kToken23, noon));
  CHECK(tokens.valid(kToken24, noon));
  CHECK_FALSE(tokens.valid(sbus::compat_token(kSecret, "2026-11-25"), noon));
  CHECK_FALSE(tokens.valid(std::string(kToken23).substr(0, 39), noon));

  // Worked out again at most a minute after the date changed.
  const auto next_day = utc(2026y / November / 24, hours(0), minutes(1)) + seconds(30);
  CHECK(tokens.today(utc(2026y / November / 23, hours(23), minutes(59)) + seconds(59)) == kToken23);
  CHECK(tokens.today(next_day) == kToken24);
  CHECK_FALSE(tokens.valid(kToken22, next_day));
  CHECK(tokens.valid(sbus::compat_token(kSecret, "2026-11-25"), next_day));

  // A clock set back a day is followed at once, not a day later.
  CHECK(tokens.today(noon) == kToken23);
  CHECK(tokens.valid(kToken22, noon));
}

TEST_CASE("compat_token_valid judges by the receiver's local date", "[token]") {
  using std::chrono::November;
  // 2026-11-25 20:00 UTC is already 2026-11-26 in a zone nine hours east.
  const auto now = utc(2026y / November / 25, hours(20));
  SECTION("in UTC the 24th is yesterday and the 27th two days off") {
    ScopedTimeZone tz("UTC");
    CHECK(sbus::compat_token_valid(kSecret, sbus::compat_token(kSecret, "2026-11-24"), now));
    CHECK_FALSE(sbus::compat_token_valid(kSecret, sbus::compat_token(kSecret, "2026-11-27"), now));
  }
  SECTION("at UTC+9 the 24th is two days off and the 27th is tomorrow") {
    ScopedTimeZone tz("XST-9");
    CHECK(sbus::local_date(now) == "2026-11-26");
    CHECK_FALSE(sbus::compat_token_valid(kSecret, sbus::compat_token(kSecret, "2026-11-24"), now));
    CHECK(sbus::compat_token_valid(kSecret, sbus::compat_token(kSecret, "2026-11-27"), now));
  }
}

TEST_CASE("local_date moves across month, year and leap-day ends", "[token]") {
  ScopedTimeZone tz("UTC");
  using std::chrono::December;
  using std::chrono::February;
  using std::chrono::January;
  using std::chrono::November;

  SECTION("the day itself") {
    CHECK(sbus::local_date(utc(2026y / November / 23)) == "2026-11-23");
    CHECK(sbus::local_date(utc(2026y / November / 23, hours(0), minutes(0))) == "2026-11-23");
    CHECK(sbus::local_date(utc(2026y / November / 23, hours(23), minutes(59))) == "2026-11-23");
  }
  SECTION("a month end") {
    CHECK(sbus::local_date(utc(2026y / January / 31), 1) == "2026-02-01");
    CHECK(sbus::local_date(utc(2026y / February / 1), -1) == "2026-01-31");
    CHECK(sbus::local_date(utc(2026y / November / 30, hours(23), minutes(30)), 1) == "2026-12-01");
  }
  SECTION("a year end") {
    CHECK(sbus::local_date(utc(2026y / December / 31), 1) == "2027-01-01");
    CHECK(sbus::local_date(utc(2027y / January / 1, hours(0), minutes(5)), -1) == "2026-12-31");
  }
  SECTION("February in a leap year and in a common year") {
    CHECK(sbus::local_date(utc(2028y / February / 28), 1) == "2028-02-29");
    CHECK(sbus::local_date(utc(2028y / February / 29), 1) == "2028-03-01");
    CHECK(sbus::local_date(utc(2027y / February / 28), 1) == "2027-03-01");
  }
}

TEST_CASE("local_date keeps the date across a daylight-saving change", "[token]") {
  // Central Europe: summer time ends on 2026-10-25 at 03:00 local time.
  ScopedTimeZone tz("CET-1CEST,M3.5.0,M10.5.0/3");
  using std::chrono::October;
  const auto before = utc(2026y / October / 24, hours(22), minutes(30));  // 00:30 CEST on the 25th
  CHECK(sbus::local_date(before) == "2026-10-25");
  CHECK(sbus::local_date(before, 1) == "2026-10-26");
  CHECK(sbus::local_date(before, -1) == "2026-10-24");
}

TEST_CASE("the hmac-sha256 signature matches a vector computed with the openssl command", "[token][hmac]") {
  // printf 'sbus-hmac-sha256-v1\n3:e-1\n4:math\n3:add\n5:[1,2]\n10:1795000000\n32:0123...\n' |
  //   openssl dgst -sha256 -hmac 'secret token'
  CHECK(sbus::hmac_signature("secret token", "e-1", "math", "add", "[1,2]", 1795000000,
                             "0123456789abcdef0123456789abcdef") ==
        "03d05c7eb357dcd949a04f2334fd7d57bd5bef42175e6b2faafcc8da59faaa71");
}

TEST_CASE("hmac_sha256_hex matches RFC 4231 and keys of exactly one block", "[token][hmac]") {
  SECTION("RFC 4231 test case 1: a 20-byte key") {
    CHECK(sbus::hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  }
  SECTION("RFC 4231 test case 2: a key shorter than the digest") {
    CHECK(sbus::hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }
  SECTION("RFC 4231 test case 6: a key longer than a block is hashed first") {
    CHECK(sbus::hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  }
  SECTION("a key of exactly 64 bytes is used as it is, and the data may be empty") {
    // openssl dgst -sha256 -mac HMAC -macopt hexkey:(64 x 61) < /dev/null
    CHECK(sbus::hmac_sha256_hex(std::string(64, 'a'), "") ==
          "b389ef8fc24e40e35b42b70221b466916836a241257699d090bc736b8ad21b98");
  }
}

TEST_CASE("every field of the event is covered by the hmac-sha256 signature", "[token][hmac]") {
  const std::string nonce = "0123456789abcdef0123456789abcdef";
  const std::string base = sbus::hmac_signature("k", "id", "cat", "svc", "[1]", 100, nonce);
  CHECK(sbus::hmac_signature("k2", "id", "cat", "svc", "[1]", 100, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id2", "cat", "svc", "[1]", 100, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id", "cat2", "svc", "[1]", 100, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id", "cat", "svc2", "[1]", 100, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id", "cat", "svc", "[2]", 100, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id", "cat", "svc", "[1]", 101, nonce) != base);
  CHECK(sbus::hmac_signature("k", "id", "cat", "svc", "[1]", 100, "f" + nonce.substr(1)) != base);
  // Fields are length-prefixed: moving text from one to the next changes it.
  CHECK(sbus::hmac_signature("k", "idc", "at", "svc", "[1]", 100, nonce) != base);
}

TEST_CASE("a made hmac-sha256 token parses back and verifies", "[token][hmac]") {
  const std::string token = sbus::make_hmac_token("k", "id", "cat", "svc", "{}");
  sbus::HmacToken parsed;
  REQUIRE(sbus::parse_hmac_token(token, &parsed));
  CHECK(parsed.nonce.size() == 32);
  const auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  CHECK(std::abs(parsed.timestamp - now) <= 2);
  CHECK(sbus::equal_constant_time(parsed.signature,
                                  sbus::hmac_signature("k", "id", "cat", "svc", "{}", parsed.timestamp, parsed.nonce)));
  SECTION("two tokens never share a nonce") {
    sbus::HmacToken other;
    REQUIRE(sbus::parse_hmac_token(sbus::make_hmac_token("k", "id", "cat", "svc", "{}"), &other));
    CHECK(other.nonce != parsed.nonce);
  }
}

TEST_CASE("malformed hmac-sha256 tokens are refused by the parser", "[token][hmac]") {
  sbus::HmacToken parsed;
  const std::string nonce(32, 'a');
  const std::string signature(64, 'b');
  CHECK(sbus::parse_hmac_token("hmac-sha256:100:" + nonce + ":" + signature, &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("e7ea0d27ee691122c648a3c259c0a2aa0df621d9", &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("hmac-sha256:", &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("hmac-sha256:abc:" + nonce + ":" + signature, &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("hmac-sha256:100:" + nonce.substr(1) + ":" + signature, &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("hmac-sha256:100:" + nonce + ":" + signature + "0", &parsed));
  CHECK_FALSE(sbus::parse_hmac_token("hmac-sha256:100:" + nonce + ":" + std::string(64, 'G'), &parsed));
}

TEST_CASE("the replay cache remembers a nonce until it expires", "[token][hmac]") {
  sbus::ReplayCache* cache = sbus::ReplayCache::create(false);
  REQUIRE(cache != nullptr);
  CHECK(cache->remember("n1", 160, 100) == sbus::ReplayCache::Result::kFresh);
  CHECK(cache->remember("n1", 160, 120) == sbus::ReplayCache::Result::kReplayed);
  CHECK(cache->remember("n2", 160, 120) == sbus::ReplayCache::Result::kFresh);
  // Past its expiry the slot is free again (and the timestamp check refuses
  // such an old call anyway).
  CHECK(cache->remember("n1", 300, 161) == sbus::ReplayCache::Result::kFresh);
}

TEST_CASE("a nonce the replay cache forgets is fresh again, and the others stay", "[token][hmac]") {
  sbus::ReplayCache* cache = sbus::ReplayCache::create(false);
  REQUIRE(cache != nullptr);
  CHECK(cache->remember("given back", 160, 100) == sbus::ReplayCache::Result::kFresh);
  CHECK(cache->remember("kept", 160, 100) == sbus::ReplayCache::Result::kFresh);
  cache->forget("given back");
  cache->forget("never seen");
  CHECK(cache->remember("given back", 160, 110) == sbus::ReplayCache::Result::kFresh);
  CHECK(cache->remember("given back", 160, 111) == sbus::ReplayCache::Result::kReplayed);
  CHECK(cache->remember("kept", 160, 110) == sbus::ReplayCache::Result::kReplayed);
}

TEST_CASE("the hmac-sha256-v2 signature covers the node, every field of the call and the caller", "[token][hmac]") {
  const std::string nonce = "0123456789abcdef0123456789abcdef";
  const sbus::SignedCall call{"node-a", "id", "cat", "svc", "[1]", ""};
  const std::string base = sbus::hmac_v2_call_signature("k", call, 100, nonce);
  const auto changed = [&](auto change) {
    sbus::SignedCall other = call;
    change(other);
    return sbus::hmac_v2_call_signature("k", other, 100, nonce);
  };
  CHECK(changed([](sbus::SignedCall& c) { c.node = "node-b"; }) != base);
  CHECK(changed([](sbus::SignedCall& c) { c.id = "id2"; }) != base);
  CHECK(changed([](sbus::SignedCall& c) { c.category = "cat2"; }) != base);
  CHECK(changed([](sbus::SignedCall& c) { c.service = "svc2"; }) != base);
  CHECK(changed([](sbus::SignedCall& c) { c.params = "[2]"; }) != base);
  CHECK(changed([](sbus::SignedCall& c) { c.caller = "alice"; }) != base);
  CHECK(sbus::hmac_v2_call_signature("k2", call, 100, nonce) != base);
  CHECK(sbus::hmac_v2_call_signature("k", call, 101, nonce) != base);
  CHECK(sbus::hmac_v2_call_signature("k", call, 100, "f" + nonce.substr(1)) != base);
  // Not the v1 signature of the same fields: a v1 token cannot pass as v2.
  CHECK(sbus::hmac_signature("k", "id", "cat", "svc", "[1]", 100, nonce) != base);
  // Length-prefixed: text moved from the node to the id changes it.
  CHECK(changed([](sbus::SignedCall& c) {
          c.node = "node-ai";
          c.id = "d";
        }) != base);
}

TEST_CASE("the hmac-sha256-v2 format is fixed: a known token text verifies", "[token][hmac]") {
  // The canonical text of docs/security.md, signed with the openssl command:
  // printf 'sbus-hmac-sha256-v2
  // call\n4:n-01\n2:e1\n4:math\n3:add\n5:[1,2]\n10:1700000000\n32:0123456789abcdef0123456789abcdef\n0:\n'
  //   | openssl dgst -sha256 -mac HMAC -macopt key:k
  const sbus::SignedCall call{"n-01", "e1", "math", "add", "[1,2]", ""};
  CHECK(sbus::hmac_v2_call_signature("k", call, 1700000000, "0123456789abcdef0123456789abcdef") ==
        "0ce765aa3e082b31f3742719e714aab36a26bb5773d43c382349ce81def3df3e");
}

TEST_CASE("a made hmac-sha256-v2 token parses back, and malformed ones are refused", "[token][hmac]") {
  std::string nonce;
  const sbus::SignedCall call{"n", "id", "cat", "svc", "{}", ""};
  const std::string token = sbus::make_hmac_v2_token("k", call, &nonce);
  sbus::HmacV2Token parsed;
  REQUIRE(sbus::parse_hmac_v2_token(token, &parsed));
  CHECK(parsed.nonce == nonce);
  CHECK(parsed.caller.empty());
  CHECK(token.find("::") != std::string::npos);  // the empty caller
  CHECK(parsed.signature == sbus::hmac_v2_call_signature("k", call, parsed.timestamp, nonce));
  sbus::HmacToken v1;
  CHECK_FALSE(sbus::parse_hmac_token(token, &v1));  // not a v1 token

  const std::string n(32, 'a');
  const std::string s(64, 'b');
  CHECK(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + "::" + s, &parsed));
  CHECK(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":svc.billing@eu-1:" + s, &parsed));
  CHECK(parsed.caller == "svc.billing@eu-1");
  CHECK(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":" + std::string(64, 'c') + ":" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":" + std::string(65, 'c') + ":" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":a b:" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":a:b:" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + ":" + s, &parsed));  // no caller field
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256:100:" + n + ":" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:x:" + n + "::" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n.substr(1) + "::" + s, &parsed));
  CHECK_FALSE(sbus::parse_hmac_v2_token("hmac-sha256-v2:100:" + n + "::" + s + "0", &parsed));
}

TEST_CASE("a sender in hmac-sha256-v2 mode trusts a reply signed for its call, or an unsigned refusal as that error",
          "[token][hmac]") {
  const std::string nonce = "0123456789abcdef0123456789abcdef";
  sbus::Reply result("e1", "3");
  result.signature = sbus::hmac_v2_reply_signature("k", "n-01", nonce, result);
  REQUIRE(result.signature.rfind("hmac-sha256-v2:", 0) == 0);
  CHECK(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, result));

  SECTION("forged or misdirected replies are not trusted") {
    sbus::Reply forged("e1", "666");
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, forged));  // unsigned result
    forged.signature = result.signature;
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, forged));                  // another message
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-02", nonce, result));                  // signed by/for another node
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-01", "f" + nonce.substr(1), result));  // another call
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k2", "n-01", nonce, result));                 // another secret
    sbus::Reply recoded("e1", "3", "service_failed");
    recoded.signature = result.signature;
    CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, recoded));  // the code changed
  }
  SECTION("unsigned: only the refusals that come before authentication") {
    for (const char* code : {"invalid_token", "invalid_signature", "token_expired", "replayed", "message_too_large"}) {
      INFO(code);
      CHECK(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, sbus::Reply("e1", "refused", code)));
    }
    for (const char* code : {"unknown_service", "invalid_params", "service_failed", "interrupted", "malformed_xml"}) {
      INFO(code);
      CHECK_FALSE(sbus::hmac_v2_reply_trusted("k", "n-01", nonce, sbus::Reply("e1", "refused", code)));
    }
  }
}

TEST_CASE("the replay file keeps the nonces it has seen for the next sbusd that opens it", "[token][hmac]") {
  char pattern[] = "/tmp/sbus-replay-test-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const std::string dir = pattern;
  const std::string file = dir + "/state/replay-nonces";
  std::string error;
  sbus::ReplayCache* first = sbus::ReplayCache::open_file(file, &error);
  REQUIRE(first != nullptr);
  CHECK(first->remember("n1", 160, 100) == sbus::ReplayCache::Result::kFresh);
  ::munmap(first, sizeof(sbus::ReplayCache));  // as the first sbusd exits

  sbus::ReplayCache* second = sbus::ReplayCache::open_file(file, &error);
  REQUIRE(second != nullptr);
  CHECK(second->remember("n1", 160, 120) == sbus::ReplayCache::Result::kReplayed);
  CHECK(second->remember("n1", 300, 161) == sbus::ReplayCache::Result::kFresh);  // expired meanwhile
  struct stat info {};
  REQUIRE(::stat(file.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  REQUIRE(::stat((dir + "/state").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);
  ::munmap(second, sizeof(sbus::ReplayCache));

  SECTION("a file of another size is emptied, not misread") {
    REQUIRE(::truncate(file.c_str(), 4096) == 0);
    sbus::ReplayCache* third = sbus::ReplayCache::open_file(file, &error);
    REQUIRE(third != nullptr);
    CHECK(third->remember("n1", 160, 120) == sbus::ReplayCache::Result::kFresh);
    ::munmap(third, sizeof(sbus::ReplayCache));
  }
  SECTION("a FIFO in its place is refused, naming it") {
    ::unlink(file.c_str());
    REQUIRE(::mkfifo(file.c_str(), 0600) == 0);
    CHECK(sbus::ReplayCache::open_file(file, &error) == nullptr);
    CHECK(error.find(file) != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
