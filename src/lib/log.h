/*
 * log.h - one line per event, with key=value fields, to stderr or a file.
 *
 * The only global state of src/lib. Messages are written as
 *   2026-11-28T13:14:15Z postwarden[123]: info: event=delivery id=... rcpt=...
 * fatal() and fatalx() end the process: they are for broken invariants and
 * out-of-memory only, never for bad outside input.
 */
#ifndef PW_LOG_H
#define PW_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Send log lines to stream (borrowed) from level upwards; ident names the program. */
void log_init(const char *ident, enum log_level level, FILE *stream);

/*
 * postwarden's own standard error (fd 2). After log_own_stderr() the C library's stderr
 * stream goes to /dev/null, so what libraries print there (librnp's debug lines, for one)
 * never reaches a terminal, a log or an answer; postwarden writes only to pw_stderr.
 */
extern FILE *pw_stderr;
void log_own_stderr(void);
void log_set_level(enum log_level level);
bool log_debug_enabled(void);
/* Parse "debug", "info", "warn" or "error"; returns false when unknown. */
bool log_level_parse(const char *name, enum log_level *out);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log with strerror(errno) appended, then exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Log, then exit(1). */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
