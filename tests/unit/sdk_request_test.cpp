// The C++ SDK's Request made from the params' JSON text, as the SDK makes it
// for every call through the C ABI: parsed in place in a copy it keeps, so
// that its strings stay valid however the Request is moved.
#include <sbus/plugin.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <utility>
#include <vector>

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

TEST_CASE("a Request's params_json() is the text as it came, parsed only when params() is asked for", "[sdk]") {
  const std::string sent = "{ \"u\" : \"\\u00e9\" ,\n \"n\" : [1, 2.50] }";
  std::string text = sent;
  sbus::Request copied("id", "node", "c", "s", std::string_view(text));
  text.assign(text.size(), '#');  // copied: the caller's text is not referred to
  CHECK(copied.params_json() == sent);
  CHECK(copied.params()["u"].GetString() == std::string("\xc3\xa9"));
  CHECK(copied.params_json() == sent);  // the parse in place left the text whole

  // Borrowed (as the SDK hands sbusd's text over): not copied, and not
  // parsed until params() is asked for.
  std::string host_text = "[\"ab\"]";
  sbus::Request borrowed("id", "node", "c", "s", sbus::Request::Borrowed{host_text});
  CHECK(borrowed.params_json().data() == host_text.data());
  host_text[2] = 'x';
  CHECK(borrowed.params()[0].GetString() == std::string("xb"));

  // From a document: the text is the document written compactly.
  rapidjson::Document document;
  document.Parse("{ \"a\" : [ 1 , true ] }");
  sbus::Request from_document("id", "node", "c", "s", std::move(document));
  CHECK(from_document.params_json() == "{\"a\":[1,true]}");
  CHECK(from_document.params()["a"][1].IsTrue());
}

TEST_CASE("a Request's params are parsed once however many threads ask at once", "[sdk]") {
  const std::string text = "{\"long\":\"" + std::string(200000, 'z') + "\"}";
  sbus::Request request("id", "node", "c", "s", std::string_view(text));
  std::vector<const rapidjson::Value*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) threads.emplace_back([&, i] { seen[i] = &request.params(); });
  for (std::thread& thread : threads) thread.join();
  for (const rapidjson::Value* value : seen) CHECK(value == seen[0]);
  CHECK(request.params()["long"].GetStringLength() == 200000);
}
