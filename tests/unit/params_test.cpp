// A call's params as the worker checks them for its service: JSON of any
// size, nested at most kMaxParamsDepth deep, checked in one pass of the text
// without recursion however deep the text; and a plugin's reply, one JSON
// value of any depth.
#include "worker/params.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(static_cast<std::size_t>(depth), '[') + inner + std::string(static_cast<std::size_t>(depth), ']');
}

bool parse(const std::string& text, std::string* error) {
  return sbus::check_params(text, error);
}

}  // namespace

TEST_CASE("params: JSON of every kind is taken", "[params]") {
  std::string error;
  for (const char* text : {R"({"a":[1,2,{"b":"c"}],"d":"\u00e9"})", "[]", "{}", " [1, 2.5e3, -0, true, false, null] ",
                           R"("text")", "42", "null"}) {
    CAPTURE(text);
    CHECK(parse(text, &error));
    CHECK(error.empty());
  }
}

TEST_CASE("params: nested as deep as the limit, in arrays and objects, are taken", "[params]") {
  std::string error;
  CHECK(parse(nested(sbus::kMaxParamsDepth), &error));
  std::string objects = "1";
  for (int i = 0; i < sbus::kMaxParamsDepth; ++i) objects = R"({"k":)" + objects + "}";
  CHECK(parse(objects, &error));
  // Deep in one branch only, wide in others.
  CHECK(parse("[" + nested(sbus::kMaxParamsDepth - 1) + ",[1],{\"x\":[[2]]}]", &error));
}

TEST_CASE("params: one level past the limit is refused naming it", "[params]") {
  std::string error;
  CHECK_FALSE(parse(nested(sbus::kMaxParamsDepth + 1), &error));
  CHECK(error == "params are nested more than 64 deep");
  // The deep branch behind a shallow one, in an object.
  error.clear();
  CHECK_FALSE(parse(R"({"a":1,"b":)" + nested(sbus::kMaxParamsDepth) + "}", &error));
  CHECK(error == "params are nested more than 64 deep");
}

TEST_CASE("params: text nested 200,000 deep is refused without overflowing the stack", "[params]") {
  std::string error;
  CHECK_FALSE(parse(nested(200000), &error));
  CHECK(error == "params are nested more than 64 deep");
}

TEST_CASE("params: a long string is one value, however long", "[params]") {
  std::string error;
  const std::string text = "[\"" + std::string(1024 * 1024, 'x') + "\"]";
  CHECK(parse(text, &error));
  // And again on the same thread, after the reader gave its large stack back.
  CHECK(parse(text, &error));
  CHECK(parse("[1]", &error));
  CHECK_FALSE(parse("[\"" + std::string(1024 * 1024, 'x') + "]", &error));
  CHECK(error.rfind("params are not JSON: Missing a closing quotation mark", 0) == 0);
}

TEST_CASE("params: text that is not JSON gets the parser's reason and offset", "[params]") {
  std::string error;
  CHECK_FALSE(parse("[1,2", &error));
  CHECK(error.rfind("params are not JSON: ", 0) == 0);
  CHECK(error.find(" at offset 4") != std::string::npos);
}

TEST_CASE("params: a NUL byte inside the text is refused, not a place to stop reading", "[params]") {
  std::string error;
  CHECK_FALSE(parse(std::string("[1]\0[2]", 7), &error));
  CHECK(error == "params are not JSON: a NUL byte at offset 3");
}

TEST_CASE("params: strings with escapes, NUL among them, and long unescaped runs are taken", "[params]") {
  std::string error;
  const std::string run(100, 'y');
  CHECK(parse("[\"" + run + "\\u0000" + run + "\\\"" + run + "\\n\"]", &error));
  // A control character inside a string, past a long unescaped run the
  // fast scan copies 16 bytes at a time, is still refused.
  CHECK_FALSE(parse("[\"" + run + "\x01\"]", &error));
  CHECK(error.rfind("params are not JSON: ", 0) == 0);
  CHECK(error.find(" at offset 102") != std::string::npos);
}

TEST_CASE("a plugin's reply: one JSON value, blanks after it, of any depth", "[params]") {
  for (const std::string& text : {std::string("[]"), std::string(" {\"a\": 1}\r\n\t "), std::string("\"x\""),
                                  std::string("3"), nested(200000), "[\"" + std::string(1024 * 1024, 'x') + "\"]"}) {
    CAPTURE(text.substr(0, 40));
    CHECK(sbus::is_one_json_value(text));
  }
  for (const std::string& text :
       {std::string(""), std::string("[1] [2]"), std::string("[1] x"), std::string("[1,"), std::string("{\"a\"}"),
        std::string("[1]\0", 4), std::string("[\"a\0b\"]", 7), std::string("nul"), nested(200000).substr(1)}) {
    CAPTURE(text.substr(0, 40));
    CHECK_FALSE(sbus::is_one_json_value(text));
  }
}

TEST_CASE("params: what a document of them takes, about 16 bytes a value", "[params]") {
  std::string error;
  std::size_t bytes = 0;
  REQUIRE(sbus::check_params(R"({"a":[1,2,"x"],"b":null})", &error, &bytes));
  CHECK(bytes == 8 * 16);  // the object, two keys, the array, three scalars and null
  std::string many = "[1";
  for (int i = 0; i < 999; ++i) many += ",1";
  many += "]";
  REQUIRE(sbus::check_params(many, &error, &bytes));
  CHECK(bytes == 1001 * 16);
}
