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

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *ident, enum log_level level, FILE *stream)
{
	log_ident = ident;
	log_min = level;
	log_stream = stream;
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
	FILE *out = log_stream ? log_stream : stderr;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	if (level < log_min)
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* One fprintf per piece but a single fflush: lines from one process never interleave. */
	fprintf(out, "%s %s[%ld]: %s: ", stamp, log_ident, (long)getpid(), level_names[level]);
	vfprintf(out, fmt, ap);
	if (suffix)
		fprintf(out, ": %s", suffix);
	fputc('\n', out);
	fflush(out);
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
