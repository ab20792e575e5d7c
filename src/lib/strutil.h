/*
 * strutil.h - small parsers and string helpers shared by config, CLI and protocol code.
 */
#ifndef PW_STRUTIL_H
#define PW_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "30s", "10m", "2h", "5d", "1w" or plain seconds; false on anything else or overflow. */
bool parse_duration(const char *s, int64_t *seconds);
/* "1024", "10K", "50M", "1G" (binary units); false on anything else or overflow. */
bool parse_size(const char *s, uint64_t *bytes);
/* "on/off", "yes/no", "true/false", "1/0". */
bool parse_bool(const char *s, bool *out);
/* Decimal unsigned integer within [min, max]. */
bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Format a duration as "5d", "2h30m", "45s". */
void format_duration(int64_t seconds, char *buf, size_t len);

/* Remove leading and trailing ASCII white space in place; returns s. */
char *str_trim(char *s);
/* ASCII lower-case in place; returns s. */
char *str_lower(char *s);
/* Is item one of the comma-separated entries of list (case-insensitive, blanks trimmed)? */
bool str_list_has(const char *list, const char *item);
/*
 * In a comma-separated list of name=value items (blanks trimmed, names compared
 * case-insensitively), the value of key into out; false when absent or longer than outsz-1.
 */
bool str_list_value(const char *list, const char *key, char *out, size_t outsz);
bool str_has_prefix_ci(const char *s, const char *prefix);

/*
 * Check that s is a plausible mailbox "local@domain" (RFC 5321 shape, UTF-8 allowed, no
 * spaces or controls, at most 254 bytes). Empty string (null sender) is not a mailbox.
 */
bool addr_valid(const char *s);
/* Canonical form for comparisons and storage: domain lower-cased, local-part kept. Caller frees. */
char *addr_canonical(const char *s);
/* The domain part of an address (borrowed pointer into s), or NULL. */
const char *addr_domain(const char *s);
/* p[0..n) as lower-case hex into out (2n + 1 bytes, NUL-terminated). */
void hex_encode(const unsigned char *p, size_t n, char *out);
/* Is s a host name in ASCII: labels of letters, digits and inner hyphens, 253 bytes at most? */
bool hostname_valid(const char *s);
/*
 * A domain name (U-labels or A-labels, a trailing dot allowed) as lower-case A-labels
 * (IDNA2008), the form certificates and DNS use; NULL when it is not a host name.
 * Caller frees.
 */
char *domain_to_ascii(const char *name);

/* A unix time as "2026-11-28" (UTC) for people to read; 0 gives "never". */
void format_date(int64_t t, char *buf, size_t len);

/* Milliseconds of CLOCK_MONOTONIC: for timeouts and elapsed times, immune to clock changes. */
int64_t monotonic_ms(void);

/* 16 upper-case hex characters from a random source, NUL-terminated: queue IDs. */
void random_id(char out[17]);

#endif
