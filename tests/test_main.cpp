#define CATCH_CONFIG_MAIN
// Catch2 2.x indents the continuation lines of a test's name past its first
// ": ", and with the default 80 columns a name whose ": " comes late wraps
// forever when a failure prints it (tests/check_test_names keeps names
// within this width).
#define CATCH_CONFIG_CONSOLE_WIDTH 200
#include <catch2/catch.hpp>
