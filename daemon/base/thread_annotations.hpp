// Clang's thread-safety annotations (-Wthread-safety), as LevelDB's
// port/thread_annotations.h declares them: which lock guards a member,
// which lock a function needs, takes or lets go of. Under clang they let
// the compiler check every access; under other compilers they expand to
// nothing. The unit test `thread_safety` compiles the annotated sources
// with clang and -Werror, so a member touched without its lock fails the
// tests.
//
// libstdc++'s std::mutex carries no capability attribute: Mutex wraps it.
#pragma once

#include <mutex>

#if defined(__clang__)
#define SBUS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SBUS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) SBUS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY SBUS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) SBUS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) SBUS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) SBUS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) SBUS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) SBUS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SBUS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) SBUS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) SBUS_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) SBUS_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS SBUS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace sbus {

// A std::mutex the analysis knows as a lock.
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mutex_.try_lock(); }

 private:
  std::mutex mutex_;
};

// A role a thread takes on, not a lock: only the thread that acquired it
// may call what REQUIRES it (clang's "capability as a role"). Costs
// nothing at run time.
class CAPABILITY("role") ThreadRole {
 public:
  void acquire() ACQUIRE() {}
  void release() RELEASE() {}
};

// Holds a Mutex for a scope, as std::lock_guard does.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_->lock(); }
  ~MutexLock() RELEASE() { mutex_->unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mutex_;
};

}  // namespace sbus
