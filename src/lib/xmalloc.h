/*
 * xmalloc.h - allocation helpers for which running out of memory is fatal.
 *
 * Callers never check the result: an allocation failure ends the process
 * with a log line, because no caller could do anything better.
 */
#ifndef PW_XMALLOC_H
#define PW_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Resize an array of nmemb elements of size bytes, checking for overflow. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
