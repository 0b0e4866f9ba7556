#include "amqp/connect_race.hpp"

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/error.hpp"

namespace sbus {
namespace {

using Clock = std::chrono::steady_clock;

// What the attempts and the caller share; it lives as long as the last of
// them.
struct Race {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> errors;  // by candidate, once it failed
  std::vector<bool> done;           // by candidate, once it has a result
  std::size_t finished = 0;
  std::optional<RaceWinner> winner;
  bool over = false;  // the caller returned: a late success is closed
};

void attempt(const std::shared_ptr<Race>& race, BrokerUri uri, ConnectOptions options, std::size_t index) {
  AmqpConnection connection;
  std::string error;
  try {
    connection = AmqpConnection::open(uri, options);
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::unique_lock<std::mutex> lock(race->mutex);
  ++race->finished;
  race->done[index] = true;
  if (connection && !race->winner && !race->over) {
    race->winner = RaceWinner{std::move(connection), index};
  } else if (!connection) {
    race->errors[index] = error;
  }
  race->changed.notify_all();
  lock.unlock();
  // A loser that connected says goodbye politely, on its own thread.
  connection.close();
}

}  // namespace

std::optional<RaceWinner> open_first(const std::vector<BrokerUri>& candidates, const ConnectOptions& options,
                                     std::chrono::milliseconds head_start, std::string* failures) {
  if (candidates.empty()) return std::nullopt;
  auto race = std::make_shared<Race>();
  race->errors.resize(candidates.size());
  race->done.resize(candidates.size());
  std::vector<std::thread> attempts;
  std::size_t started = 0;
  std::unique_lock<std::mutex> lock(race->mutex);
  for (;;) {
    if (started < candidates.size()) {
      attempts.emplace_back(attempt, race, candidates[started], options, started);
      ++started;
    }
    // The next candidate starts after the head start, or as soon as every
    // attempt started so far has failed.
    const auto next_at = Clock::now() + head_start;
    const std::size_t running_from = started;
    race->changed.wait_until(lock, next_at, [&] {
      return race->winner.has_value() || race->finished == running_from ||
             (started == candidates.size() && race->finished == started);
    });
    if (race->winner || (started == candidates.size() && race->finished == started)) break;
    if (started == candidates.size()) {
      // Nothing left to start: wait for the attempts still running.
      race->changed.wait(lock, [&] { return race->winner.has_value() || race->finished == started; });
      break;
    }
  }
  race->over = true;
  for (const std::string& error : race->errors) {
    if (!error.empty()) *failures += "\n  " + error;
  }
  std::optional<RaceWinner> winner = std::move(race->winner);
  race->winner.reset();
  const std::vector<bool> done = race->done;
  lock.unlock();
  // Attempts with a result are joined: their threads end at once, and what
  // the TLS library keeps per thread is freed before the caller may exit.
  // One still stuck on a frozen broker is left to finish on its own.
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    if (done[i]) {
      attempts[i].join();
    } else {
      attempts[i].detach();
    }
  }
  return winner;
}

}  // namespace sbus
