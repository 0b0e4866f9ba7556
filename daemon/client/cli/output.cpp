#include "client/cli/output.hpp"

namespace sbus::cli {

void Output::result(const JsonObject& document, std::string_view text) const {
  if (json_) {
    *out_ << document.str() << "\n";
  } else {
    *out_ << text;
  }
  out_->flush();
}

void Output::item(const JsonObject& document, std::string_view text_line) const {
  if (json_) {
    *out_ << document.str() << "\n";
  } else {
    *out_ << text_line << "\n";
  }
  out_->flush();
}

JsonObject error_object(ExitCode exit, std::string_view code, std::string_view message) {
  JsonObject error;
  error.text("code", code).text("message", message).integer("exit", static_cast<int>(exit));
  error.text("exit_name", exit_code_name(exit));
  return error;
}

ExitCode Output::fail(ExitCode exit, std::string_view code, std::string_view message) const {
  return fail(exit, code, message, JsonObject());
}

ExitCode Output::fail(ExitCode exit, std::string_view code, std::string_view message, const JsonObject& more) const {
  if (!json_) {
    *err_ << "sbus: " << message << "\n";
    return exit;
  }
  JsonObject error = error_object(exit, code, message);
  error.merge(more);
  *err_ << JsonObject().object("error", error).str() << "\n";
  return exit;
}

ExitCode Output::fail(const SenderError& error, std::string_view context) const {
  const std::string message = context.empty() ? std::string(error.what()) : std::string(context) + ": " + error.what();
  return fail(exit_code_for(error), code_for(error), message);
}

void Output::warn(std::string_view message) const {
  if (json_) {
    *err_ << JsonObject().object("warning", JsonObject().text("message", message)).str() << "\n";
  } else {
    *err_ << "sbus: " << message << "\n";
  }
}

void Output::note(std::string_view text) const {
  if (!json_) *err_ << text;
}

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
  return out;
}

void warn_dropped(const Sender& sender, const Output& output) {
  if (sender.dropped_replies() > 0) {
    output.warn("dropped " + std::to_string(sender.dropped_replies()) +
                " reply(ies) that failed the hmac-sha256-v2 signature check");
  }
}

}  // namespace sbus::cli
