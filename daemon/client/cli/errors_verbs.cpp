// sbus errors list and sbus errors requeue: a node's error queue.
#include "client/cli/output.hpp"
#include "client/cli/runners.hpp"

namespace sbus::cli {

ExitCode run_errors_list(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  const std::string& queue = invocation.line.error_queue;
  const std::string queue_name = queue.empty() ? node + ".error" : queue;
  return with_sender(invocation, [&](Sender& sender) {
    // One line per message, for grep and wc -l; the count on stderr.
    const std::vector<DeadLetter> letters = sender.list_errors(node, queue);
    std::string text;
    std::vector<JsonObject> messages;
    for (const DeadLetter& letter : letters) {
      text += one_line(letter.header("x-sbus-service")) + "\t" + one_line(letter.header("x-sbus-attempts")) +
              " attempts\t" + one_line(letter.header("x-sbus-error")) + "\t" + one_line(letter.body) + "\n";
      JsonObject headers;
      for (const auto& [name, value] : letter.headers) headers.text(name, value);
      JsonObject message;
      message.text("service", letter.header("x-sbus-service")).text("attempts", letter.header("x-sbus-attempts"));
      message.text("error", letter.header("x-sbus-error")).text("body", letter.body).object("headers", headers);
      messages.push_back(std::move(message));
    }
    JsonObject document;
    document.text("node", node).text("queue", queue_name).integer("count", static_cast<std::int64_t>(letters.size()));
    document.objects("messages", messages);
    invocation.out.result(document, text);
    invocation.out.note(std::to_string(letters.size()) + " message(s) in " + queue_name + "\n");
    return ExitCode::kOk;
  });
}

ExitCode run_errors_requeue(const Invocation& invocation) {
  const std::string& node = invocation.operands[0];
  return with_sender(invocation, [&](Sender& sender) {
    const std::size_t moved = sender.requeue_errors(node, invocation.line.error_queue);
    JsonObject document;
    document.text("node", node).integer("requeued", static_cast<std::int64_t>(moved));
    invocation.out.result(document, "requeued " + std::to_string(moved) + " message(s) to " + node + "\n");
    return ExitCode::kOk;
  });
}

}  // namespace sbus::cli
