/*
 * log.c - line-oriented logging with levels; see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "postwarden";
static enum log_level log_min = LOG_LEVEL_INFO;
static FILE *log_stream;
FILE *pw_stderr;

#define LOG_LINE_MAX 8192

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *ident, enum log_level level, FILE *stream)
{
	log_ident = ident;
	log_min = level;
	log_stream = stream;
}

void log_own_stderr(void)
{
	FILE *null = fopen("/dev/null", "w");

	pw_stderr = stderr;
	/*
	 * glibc's stdin/stdout/stderr are ordinary variables that may be assigned, and libraries
	 * write through that same variable. Sanitizer reports write to fd 2 directly and still
	 * appear. Without /dev/null (a broken chroot) library lines stay visible: harmless.
	 */
	if (null != NULL)
		stderr = null;
}

void log_set_level(enum log_level level)
{
	log_min = level;
}

bool log_debug_enabled(void)
{
	return log_min <= LOG_LEVEL_DEBUG;
}

bool log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap, const char *suffix)
{
	FILE *out = log_stream ? log_stream : pw_stderr ? pw_stderr : stderr;
	char line[LOG_LINE_MAX], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int n, m;

	if (level < log_min)
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/*
	 * The whole line is built first and written with one call: stderr is unbuffered, so
	 * piecewise writes would let lines of other threads (queue worker, key directory timer)
	 * and readers of the log file see half lines.
	 */
	n = snprintf(line, sizeof(line), "%s %s[%ld]: %s: ", stamp, log_ident, (long)getpid(),
		     level_names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = m < 0 ? n : n + m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;	/* truncated: a log line is never unbounded */
	if (suffix) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", suffix);
		n = m < 0 ? n : n + m;
		if (n > (int)sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	flockfile(out);
	fwrite(line, 1, (size_t)n, out);
	fflush(out);
	funlockfile(out);
}

#define LOG_FN(name, level)                          \
	void name(const char *fmt, ...)              \
	{                                            \
		va_list ap;                          \
		va_start(ap, fmt);                   \
		log_vwrite(level, fmt, ap, NULL);    \
		va_end(ap);                          \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void fatal(const char *fmt, ...)
{
	const char *reason = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, reason);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
