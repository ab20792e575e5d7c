/*
 * ct_match.h - the CT monitor's watch list and the test of a certificate's names against it.
 *
 * "example.org" watches exactly that name; ".example.org" watches it and every name below.
 * Names are compared in ASCII without regard to case and without a trailing dot; the
 * certificate's names are A-labels already, and configured internationalised names must
 * be converted by the caller. A certificate's "*.example.org" matches the watched names it
 * would cover. A name with a character outside letters, digits, '-' and '_' (or a '*'
 * anywhere but as the whole first label) never matches.
 */
#ifndef PW_CT_MATCH_H
#define PW_CT_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "ctmon/ct_names.h"

struct ct_watch;

struct ct_watch *ct_watch_new(void);
void ct_watch_free(struct ct_watch *w);

/* Add one watched name; -1 with *err set when it is not a valid domain name. */
int ct_watch_add(struct ct_watch *w, const char *name, const char **err);

/* Whether one certificate name (not NUL-terminated) is watched. */
bool ct_watch_match(const struct ct_watch *w, const char *name, size_t len);

/* The index of the first watched name of the certificate (CN or dNSName), or -1. */
int ct_watch_match_cert(const struct ct_watch *w, const struct ct_cert *c);

#endif
