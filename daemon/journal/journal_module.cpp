// sbus-journal.so: the one part of sbus that maps libsystemd (and with it
// liblzma, libzstd, liblz4, libgcrypt, libcap). base/log_journal.cpp loads
// it only when the log goes to the journal, so that the supervisor keeps its
// footprint otherwise. Exports sbus_journal_sendv and nothing else.
// Without it, sd_journal_sendv() is a macro that adds CODE_FILE, CODE_LINE
// and CODE_FUNC of this file to every entry: noise, the same for each line.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

extern "C" __attribute__((visibility("default"))) int sbus_journal_sendv(const struct iovec* fields, int count) {
  return sd_journal_sendv(fields, count);
}
