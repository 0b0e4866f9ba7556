#include "protocol/error_seal.hpp"

#include <catch2/catch.hpp>

TEST_CASE("an error queue seal is good only for the same secret, node and body") {
  const std::string seal = sbus::error_seal("secret", "n1", "<event/>");
  CHECK(seal.size() == 64);
  CHECK(sbus::error_seal_valid(seal, "secret", "n1", "<event/>"));
  CHECK_FALSE(sbus::error_seal_valid(seal, "other", "n1", "<event/>"));
  CHECK_FALSE(sbus::error_seal_valid(seal, "secret", "n2", "<event/>"));
  CHECK_FALSE(sbus::error_seal_valid(seal, "secret", "n1", "<event />"));
  CHECK_FALSE(sbus::error_seal_valid("", "secret", "n1", "<event/>"));
  CHECK_FALSE(sbus::error_seal_valid(sbus::error_seal("", "n1", "b"), "", "n1", "b"));
}
