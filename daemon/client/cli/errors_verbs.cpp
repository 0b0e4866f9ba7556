// sbus errors list and sbus errors requeue: a node's error queue.
#include <iostream>

#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {

ExitCode run_errors_list(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  const std::string& queue = invocation.line.error_queue;
  return with_sender(invocation, [&](Sender& sender) {
    // One line per message, for grep and wc -l; the count on stderr.
    const std::vector<DeadLetter> letters = sender.list_errors(node, queue);
    for (const DeadLetter& letter : letters) {
      std::cout << one_line(letter.header("x-sbus-service")) << "\t" << one_line(letter.header("x-sbus-attempts"))
                << " attempts\t" << one_line(letter.header("x-sbus-error")) << "\t" << one_line(letter.body) << "\n";
    }
    std::cerr << letters.size() << " message(s) in " << (queue.empty() ? node + ".error" : queue) << "\n";
    return ExitCode::kOk;
  });
}

ExitCode run_errors_requeue(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  return with_sender(invocation, [&](Sender& sender) {
    std::cout << "requeued " << sender.requeue_errors(node, invocation.line.error_queue) << " message(s) to " << node
              << "\n";
    return ExitCode::kOk;
  });
}

}  // namespace sbus::cli
