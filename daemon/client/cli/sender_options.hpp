// The sender's options of a command line: from --config, or from --broker
// and --secret-file, then the options that override either.
#pragma once

#include <sbus/sender.hpp>

#include <optional>

#include "client/cli/command_line.hpp"
#include "client/cli/verb.hpp"

namespace sbus::cli {

// Fills `options` for `verb` from `line`. A problem (a config that does not
// load, a broker URI that is not AMQP, an unreadable or short secret, no
// secret for a verb that signs, a bad --token, --tls-cert without
// --tls-key, a negative --retry) is printed to stderr and returns kUsage.
std::optional<ExitCode> build_sender_options(const CommandLine& line, const Verb& verb, SenderOptions* options,
                                             const Output& output = Output());

}  // namespace sbus::cli
