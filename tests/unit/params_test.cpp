// A call's params as the worker parses them for its service: JSON of any
// size, nested at most kMaxParamsDepth deep, checked on the document (one
// parse of the text, not two) without recursion however deep the text.
#include "worker/params.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace {

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(static_cast<std::size_t>(depth), '[') + inner + std::string(static_cast<std::size_t>(depth), ']');
}

bool parse(const std::string& text, std::string* error) {
  sbus::Job job;
  return sbus::parse_params(text, &job, error);
}

}  // namespace

TEST_CASE("params: parsed into the job's document", "[params]") {
  sbus::Job job;
  std::string error;
  REQUIRE(sbus::parse_params(R"({"a":[1,2,{"b":"c"}],"d":"\u00e9"})", &job, &error));
  CHECK(error.empty());
  REQUIRE(job.params.IsObject());
  CHECK(job.params["a"][2]["b"].GetString() == std::string("c"));
  CHECK(job.params["d"].GetString() == std::string("\xc3\xa9"));
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
  sbus::Job job;
  std::string error;
  const std::string text = "[\"" + std::string(1024 * 1024, 'x') + "\"]";
  REQUIRE(sbus::parse_params(text, &job, &error));
  CHECK(job.params[0].GetStringLength() == 1024 * 1024);
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

TEST_CASE("params: strings with escapes, NUL among them, and long unescaped runs parse whole", "[params]") {
  sbus::Job job;
  std::string error;
  const std::string run(100, 'y');
  REQUIRE(sbus::parse_params("[\"" + run + "\\u0000" + run + "\\\"" + run + "\\n\"]", &job, &error));
  const std::string expected = run + std::string(1, '\0') + run + "\"" + run + "\n";
  CHECK(std::string(job.params[0].GetString(), job.params[0].GetStringLength()) == expected);
}
