/*
 * keys.h - checking and minimising users' public keys (OpenPGP with librnp, S/MIME with
 * OpenSSL), and the names under which they are published (OPENPGPKEY, SMIMEA, WKD).
 *
 * The same checks serve the directory (a user publishes a key for their own addresses) and
 * key search (a key found elsewhere must carry the searched address): keys_accept takes
 * the addresses a key may be published for, refuses with a clear reason, and returns one
 * minimised copy per matching address.
 */
#ifndef PW_KEYS_H
#define PW_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_MAX_UPLOAD (1024 * 1024)	/* largest input handed to librnp or OpenSSL */

enum keys_kind {
	KEYS_OPENPGP,
	KEYS_SMIME,
};

enum keys_error {
	KEYS_OK,
	KEYS_ERR_NOT_A_KEY,	/* not OpenPGP or X.509, or truncated */
	KEYS_ERR_TOO_BIG,	/* input over KEYS_MAX_UPLOAD */
	KEYS_ERR_MULTIPLE,	/* more than one primary key / certificate */
	KEYS_ERR_SECRET,	/* secret key material: refused and never stored */
	KEYS_ERR_NO_SELFSIG,	/* no valid self-signature */
	KEYS_ERR_REVOKED,
	KEYS_ERR_EXPIRED,	/* expired, or expiring within the margin */
	KEYS_ERR_WEAK,		/* RSA/DSA < 2048 bits, ElGamal, unknown algorithm */
	KEYS_ERR_NO_ENCRYPTION,	/* no usable encryption (sub)key */
	KEYS_ERR_NO_ADDRESS,	/* no valid user ID / certificate address among the allowed ones */
	KEYS_ERR_RECORD_SIZE,	/* minimised copy larger than the limit */
};

struct keys_policy {
	int64_t now;			/* unix time of the check */
	int64_t expiry_margin;		/* refuse keys that expire within this many seconds */
	size_t max_record_size;		/* largest minimised copy (the DNS RDATA), bytes */
};

/* One minimised copy of the key for one address. */
struct keys_copy {
	char *address;		/* as it appears in the key's user ID / certificate */
	uint8_t *data;		/* OpenPGP: binary transferable public key carrying only this
				 * address's user ID; S/MIME: the DER certificate */
	size_t len;
};

struct keys_info {
	enum keys_kind kind;
	char fingerprint[65];	/* upper-case hex; OpenPGP: v4 fingerprint; S/MIME: SHA-256 of
				 * the DER */
	char algorithm[32];	/* "RSA", "EDDSA", "ECDSA", ... */
	unsigned bits;
	int64_t created;
	int64_t expires;	/* 0: never */
	struct keys_copy *copies;
	size_t ncopies;
};

/*
 * Parse and check data (armored or binary OpenPGP; PEM or DER X.509) for publication under
 * the addresses allowed[] (compared case-insensitively). On success fills *info with one
 * minimised copy per allowed address the key carries. On refusal returns the reason and sets
 * *msg to a sentence for the user (caller frees). Secret key material is never copied
 * anywhere: not to a log, a temporary file or *msg. On refusal *info holds no copies, but
 * its kind, fingerprint, algorithm and dates are filled in when the key could be read (for
 * logs); keys_info_free is safe either way.
 */
enum keys_error keys_accept(const uint8_t *data, size_t len, char *const *allowed, size_t nallowed,
			    const struct keys_policy *policy, struct keys_info *info, char **msg);
void keys_info_free(struct keys_info *info);
const char *keys_error_name(enum keys_error e);	/* "revoked", "secret-key", ... */
const char *keys_kind_name(enum keys_kind k);	/* "openpgp", "smime" */

/* ASCII-armor a binary OpenPGP key, LF line ends (caller frees; NULL on failure). */
char *keys_armor(const uint8_t *data, size_t len);
/* A key as text for people and APIs: armored OpenPGP, or a PEM certificate (caller frees). */
char *keys_text(enum keys_kind kind, const uint8_t *data, size_t len);

/*
 * Owner names. keys_dane_name gives hex(SHA-256(local-part))[:56] + "." + label + "." + domain
 * with label "_openpgpkey" (RFC 7929) or "_smimecert" (RFC 8162); the local-part is hashed as
 * given (UTF-8, no case folding). keys_wkd_hash gives z-base-32(SHA-1(lower-cased local-part)).
 * Caller frees.
 */
char *keys_dane_name(const char *address, const char *label);
char *keys_wkd_hash(const char *local_part);
/* z-base-32 encoding (caller frees). */
char *keys_zbase32(const uint8_t *data, size_t len);

#endif
