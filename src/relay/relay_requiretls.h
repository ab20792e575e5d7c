/*
 * relay_requiretls.h - REQUIRETLS (RFC 8689) on the way out: the decision whether one
 * connection may carry a REQUIRETLS message, as a pure function (relay_requiretls.c; the
 * SMTP client's hook, mta_requiretls_check, is in relay_mta_priv.h).
 */
#ifndef PW_RELAY_REQUIRETLS_H
#define PW_RELAY_REQUIRETLS_H

#include <stdbool.h>

/*
 * NULL when a connection may carry a REQUIRETLS message: TLS, the host authenticated by DANE
 * (dane) or by an MTA-STS enforce policy whose checks passed (mta_sts), and REQUIRETLS
 * offered in its EHLO answer. Otherwise the first missing condition in words, for the
 * notification ("does not support REQUIRETLS", ...): a static string.
 */
const char *requiretls_missing(bool tls, bool dane, bool mta_sts, bool offered);

#endif
