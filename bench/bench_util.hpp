// Small helpers of sbus-bench's processes: files, pipes, sender options.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include <sbus/sender.hpp>

#include "raw_amqp.hpp"

namespace bench {

// The call every RPC figure makes, and what it answers.
inline constexpr const char* kParams = "[1,2]";
inline constexpr const char* kSum = "3";

std::string self_dir();
std::string read_text(const std::string& path);
// Throws std::runtime_error when it cannot.
void write_text(const std::string& path, const std::string& text, mode_t mode = 0644);
bool write_all(int fd, const void* data, std::size_t size);
bool read_all(int fd, void* data, std::size_t size);
std::string trim(std::string text);
// Params of `size` (at least 4) bytes that test.echo answers unchanged: a
// JSON array of one string.
std::string large_params(std::size_t size);

// A sender of the broker on 127.0.0.1:port (with `tls`: amqps:// to
// localhost:port, mutual TLS) signing with `secret`.
sbus::SenderOptions sender_options(int port, const std::string& secret, const TlsFiles& tls = {});

// What a caller process reports, followed by `latencies` uint64 values.
struct CallerHeader {
  std::uint64_t calls = 0;
  std::uint64_t errors = 0;
  double seconds = 0;
  std::uint64_t latencies = 0;
};

// `sbus-bench caller ...` and `sbus-bench load ...` (sbus_bench.cpp's
// comment): processes the benchmark starts, or a fixed load to profile.
int caller_main(int argc, char** argv);
int load_main(int argc, char** argv);

}  // namespace bench
