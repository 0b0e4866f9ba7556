#include <catch2/catch.hpp>

#include <string>

#include "amqp/amqp_connection.hpp"

TEST_CASE("cloned delivery properties outlive the memory they were read from") {
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t clone{};
  {
    std::string reply_to = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAx";
    std::string correlation_id = "c-42";
    std::string key = "x-trace";
    std::string value = "abc";
    amqp_table_entry_t entry{sbus::to_bytes(key), {}};
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = sbus::to_bytes(value);
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.reply_to = sbus::to_bytes(reply_to);
    props.correlation_id = sbus::to_bytes(correlation_id);
    props.headers = amqp_table_t{1, &entry};
    REQUIRE(sbus::clone_properties(props, &clone, &pool));
    for (std::string* text : {&reply_to, &correlation_id, &key, &value}) text->assign(text->size(), '#');
  }
  CHECK(clone._flags == (AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_HEADERS_FLAG));
  CHECK(sbus::bytes_to_string(clone.reply_to) == "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAx");
  CHECK(sbus::bytes_to_string(clone.correlation_id) == "c-42");
  REQUIRE(clone.headers.num_entries == 1);
  CHECK(sbus::bytes_to_string(clone.headers.entries[0].key) == "x-trace");
  CHECK(sbus::bytes_to_string(clone.headers.entries[0].value.value.bytes) == "abc");
  CHECK(clone.content_type.len == 0);
  empty_amqp_pool(&pool);
}
