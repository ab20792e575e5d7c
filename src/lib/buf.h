/*
 * buf.h - a growable, binary-safe byte buffer with a hard maximum per instance.
 *
 * Every buffer that holds outside input has a maximum: appending past it fails
 * (returns -1 and leaves the buffer as it was) instead of growing without bound.
 */
#ifndef PW_BUF_H
#define PW_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;	/* always NUL-terminated after data[len] */
	size_t len;
	size_t cap;
	size_t max;	/* 0: no limit (only for data postwarden makes itself) */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Append n bytes; -1 when that would exceed the maximum. */
int buf_add(struct buf *b, const void *data, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Hand the contents to the caller (who frees them) and reset the buffer. */
char *buf_release(struct buf *b, size_t *len);

#endif
