/*
 * keys_int.h - what keys.c, keys_pgp.c and keys_smime.c share; not for other modules.
 */
#ifndef PW_KEYS_INT_H
#define PW_KEYS_INT_H

#include <stdarg.h>

#include "keys/keys.h"

#define KEYS_MAX_UID 1024	/* longest user ID or certificate address considered */

enum keys_error keys_pgp_accept(const uint8_t *data, size_t len, char *const *allowed,
				size_t nallowed, const struct keys_policy *policy,
				struct keys_info *info, char **msg);
enum keys_error keys_smime_accept(const uint8_t *data, size_t len, char *const *allowed,
				  size_t nallowed, const struct keys_policy *policy,
				  struct keys_info *info, char **msg);

/* Set *msg to the formatted sentence (if msg is not NULL) and return e. */
enum keys_error keys_refuse(char **msg, enum keys_error e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The address of a user ID "Name <addr>" or a bare "addr" (caller frees), or NULL. */
char *keys_uid_address(const char *uid);
/* Index into allowed[] of addr (ASCII case-insensitive), or -1. */
int keys_allowed_index(const char *addr, char *const *allowed, size_t nallowed);
/* "2026-11-28 13:14 UTC" for a unix time. */
void keys_format_time(int64_t t, char *buf, size_t len);
/* A copy of s safe to show: printable ASCII kept, anything else '?', at most max bytes. */
char *keys_printable(const char *s, size_t max);
/* Append one copy to info (takes ownership of address and data). */
void keys_add_copy(struct keys_info *info, char *address, uint8_t *data, size_t len);
/* Upper-case hex of n bytes into out (2n+1 bytes). */
void keys_hex(const uint8_t *p, size_t n, char *out, bool upper);

#endif
