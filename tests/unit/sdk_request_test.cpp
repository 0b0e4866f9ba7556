// The C++ SDK's Request made from the params' JSON text, as the SDK makes it
// for every call through the C ABI: parsed in place in a copy it keeps, so
// that its strings stay valid however the Request is moved.
#include <sbus/plugin.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <utility>

TEST_CASE("a Request made from params text holds them parsed, escapes and long strings whole", "[sdk]") {
  const std::string run(100000, 'y');
  std::string text = R"({"a":[1,"x",null],"e":"tab\tnul\u0000quote\"","long":")" + run + R"(","u":"\u00e9"})";
  sbus::Request request("id-1", "node", "test", "echo", std::string_view(text));
  text.assign(text.size(), '#');  // the caller's text is not referred to
  const rapidjson::Value& params = request.params();
  REQUIRE(params.IsObject());
  CHECK(params["a"][1].GetString() == std::string("x"));
  CHECK(std::string(params["e"].GetString(), params["e"].GetStringLength()) == std::string("tab\tnul\0quote\"", 14));
  CHECK(params["long"].GetStringLength() == run.size());
  CHECK(params["u"].GetString() == std::string("\xc3\xa9"));
  // Moved: the strings are still there.
  sbus::Request moved(std::move(request));
  CHECK(moved.params()["long"].GetString() == run);
  CHECK(moved.params()["a"][1].GetString() == std::string("x"));
}

TEST_CASE("a Request made from short or empty params text", "[sdk]") {
  sbus::Request short_one("id", "node", "c", "s", std::string_view("[\"ab\"]"));
  sbus::Request moved(std::move(short_one));
  CHECK(moved.params()[0].GetString() == std::string("ab"));
  sbus::Request empty("id", "node", "c", "s", std::string_view());
  CHECK(empty.params().IsNull());
}
