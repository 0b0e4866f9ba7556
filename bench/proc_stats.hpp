// CPU time and resident memory of other processes, read from /proc.
#pragma once

#include <sys/types.h>

#include <vector>

namespace bench {

// utime + stime of `pid` (all its threads, living and ended), in seconds;
// 0 when it is gone.
double cpu_seconds(pid_t pid);
// VmRSS of `pid` in KiB; 0 when it is gone.
long rss_kib(pid_t pid);
// The part of its RSS that no other process maps (USS: Private_Clean +
// Private_Dirty of /proc/PID/smaps_rollup) in KiB; 0 when it is gone.
long private_kib(pid_t pid);
// The living children of `pid`.
std::vector<pid_t> children_of(pid_t pid);
// cpu_seconds of `pid` and of its children.
double tree_cpu_seconds(pid_t pid);
// Voluntary context switches (each a sleep and a wake-up) of the living
// threads of `pid`, and of `pid` and its children.
long voluntary_switches(pid_t pid);
long tree_voluntary_switches(pid_t pid);

}  // namespace bench
