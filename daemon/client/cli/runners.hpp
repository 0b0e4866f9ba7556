// The functions that run the verbs of the table in verb.hpp, one each. Each
// is called once the operands' count and the sender's options have been
// checked; it prints its result on stdout, its problems on stderr with the
// prefix "sbus: ", and returns the exit code.
#pragma once

#include <functional>

#include "client/cli/verb.hpp"

namespace sbus::cli {

ExitCode run_call(const Invocation& invocation);            // call_verbs.cpp
ExitCode run_send(const Invocation& invocation);            // call_verbs.cpp
ExitCode run_ping(const Invocation& invocation);            // call_verbs.cpp
ExitCode run_publish(const Invocation& invocation);         // call_verbs.cpp
ExitCode run_stats(const Invocation& invocation);           // stats_verb.cpp
ExitCode run_services(const Invocation& invocation);        // services_verb.cpp
ExitCode run_discover(const Invocation& invocation);        // discover_verb.cpp
ExitCode run_completion(const Invocation& invocation);      // completion_verb.cpp
ExitCode run_errors_list(const Invocation& invocation);     // errors_verbs.cpp
ExitCode run_errors_requeue(const Invocation& invocation);  // errors_verbs.cpp
ExitCode run_help(const Invocation& invocation);            // usage.cpp: help_text()

// Runs `body` with a Sender on the invocation's options: a SenderError
// (no broker, lost connection, timeout, bad address) is printed and becomes
// its exit code (exit_code_for).
ExitCode with_sender(const Invocation& invocation, const std::function<ExitCode(Sender&)>& body);

}  // namespace sbus::cli
