/*
 * keys_pgp.c - checking and minimising an OpenPGP public key with librnp.
 *
 * The input is first walked packet by packet here (no librnp yet): that is where secret key
 * material, a second primary key, truncation and packets that have no place in a key are
 * refused, before any library state holds the data. librnp then answers the questions that
 * need signature verification: validity, revocation, expiry, usable subkeys and user IDs.
 * Each published copy is built in its own scratch keyring: one user ID, the newest valid
 * self-signature of each part, only the subkeys still valid; then re-imported as a check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "keys/keys_int.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

/* OpenPGP packet tags (RFC 4880 section 4.3). */
enum {
	PGP_TAG_SIGNATURE = 2,
	PGP_TAG_SECRET_KEY = 5,
	PGP_TAG_PUBLIC_KEY = 6,
	PGP_TAG_SECRET_SUBKEY = 7,
	PGP_TAG_MARKER = 10,
	PGP_TAG_TRUST = 12,
	PGP_TAG_USER_ID = 13,
	PGP_TAG_PUBLIC_SUBKEY = 14,
	PGP_TAG_USER_ATTR = 17,
};

#define KEYS_PGP_MIN_BITS 2048
#define KEYS_PGP_MAX_SUBKEYS 64		/* more is not a key anybody uses */
#define KEYS_PGP_MAX_UIDS 256

/* What the packet walk found. */
struct keys_pgp_scan {
	size_t primaries;
	size_t subkeys;
	size_t secrets;
	size_t uids;
	size_t user_attrs;
	int first_tag;
	int bad_tag;		/* a packet that does not belong in a key, or 0 */
	int old_version;	/* a version 2/3 key packet, or 0 */
	int new_version;	/* a key packet version librnp 0.16 cannot read, or 0 */
	int unknown_alg;	/* first unknown public-key algorithm, or 0 */
	bool primary_elgamal;
	bool truncated;
	bool bad_header;
};

/* State of one check: the scratch keyring and the primary key in it. */
struct keys_pgp_key {
	rnp_ffi_t ffi;
	rnp_key_handle_t key;
	char fpr[65];
};

/* One of the allowed addresses and the user ID chosen for it. */
struct keys_pgp_match {
	char *uid;		/* the whole user ID text */
	char *addr;		/* the address inside it */
};

/*
 * Read the packet header at data[*off]: tag, body and its length. Returns 1 for a packet,
 * 0 at the end, -1 for a header that is not OpenPGP or a partial length, -2 if the packet
 * runs past the end of the input.
 */
static int keys_pgp_next(const uint8_t *data, size_t len, size_t *off, int *tag,
			 const uint8_t **body, size_t *blen)
{
	const uint8_t *p = data + *off;
	size_t left = len - *off, hdr, n;

	if (left == 0)
		return 0;
	if (!(p[0] & 0x80))
		return -1;
	if (p[0] & 0x40) {
		*tag = p[0] & 0x3f;
		if (left < 2)
			return -2;
		if (p[1] < 192) {
			hdr = 2;
			n = p[1];
		} else if (p[1] < 224) {
			if (left < 3)
				return -2;
			hdr = 3;
			n = ((size_t)(p[1] - 192) << 8) + p[2] + 192;
		} else if (p[1] == 255) {
			if (left < 6)
				return -2;
			hdr = 6;
			n = ((size_t)p[2] << 24) | ((size_t)p[3] << 16) | ((size_t)p[4] << 8) | p[5];
		} else {
			return -1;	/* partial body lengths are for data packets only */
		}
	} else {
		*tag = (p[0] >> 2) & 0x0f;
		switch (p[0] & 3) {
		case 0:
			hdr = 2;
			if (left < 2)
				return -2;
			n = p[1];
			break;
		case 1:
			hdr = 3;
			if (left < 3)
				return -2;
			n = ((size_t)p[1] << 8) | p[2];
			break;
		case 2:
			hdr = 5;
			if (left < 5)
				return -2;
			n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
			break;
		default:
			hdr = 1;
			n = left - 1;	/* indeterminate: to the end */
			break;
		}
	}
	if (n > left - hdr)
		return -2;
	*body = p + hdr;
	*blen = n;
	*off += hdr + n;
	return 1;
}

/* Look at a key packet's version and algorithm (RFC 4880 5.5.2). */
static void keys_pgp_scan_keypkt(const uint8_t *b, size_t n, bool primary, struct keys_pgp_scan *s)
{
	int alg;

	if (n < 1)
		return;
	if (b[0] == 2 || b[0] == 3) {
		if (s->old_version == 0)
			s->old_version = b[0];
		return;
	}
	if (b[0] != 4) {
		if (s->new_version == 0)
			s->new_version = b[0];
		return;
	}
	if (n < 6)
		return;	/* librnp will call this damaged */
	alg = b[5];
	switch (alg) {
	case 1: case 2: case 3:		/* RSA */
	case 17:			/* DSA */
	case 18: case 19: case 22:	/* ECDH, ECDSA, EdDSA */
		break;
	case 16:			/* ElGamal, encrypt-only */
		if (primary)
			s->primary_elgamal = true;
		break;
	default:			/* 20 (ElGamal sign+encrypt), and all others */
		if (s->unknown_alg == 0)
			s->unknown_alg = alg;
		break;
	}
}

/* Walk every packet of a binary key; true unless a header is broken or truncated. */
static bool keys_pgp_scan(const uint8_t *data, size_t len, struct keys_pgp_scan *s)
{
	size_t off = 0, blen;
	const uint8_t *body;
	int tag, r;

	memset(s, 0, sizeof(*s));
	while ((r = keys_pgp_next(data, len, &off, &tag, &body, &blen)) == 1) {
		if (s->first_tag == 0 && tag != PGP_TAG_MARKER)
			s->first_tag = tag;
		switch (tag) {
		case PGP_TAG_PUBLIC_KEY:
			s->primaries++;
			keys_pgp_scan_keypkt(body, blen, true, s);
			break;
		case PGP_TAG_SECRET_KEY:
			s->primaries++;
			s->secrets++;
			break;
		case PGP_TAG_SECRET_SUBKEY:
			s->subkeys++;
			s->secrets++;
			break;
		case PGP_TAG_PUBLIC_SUBKEY:
			s->subkeys++;
			keys_pgp_scan_keypkt(body, blen, false, s);
			break;
		case PGP_TAG_USER_ID:
			s->uids++;
			break;
		case PGP_TAG_USER_ATTR:
			s->user_attrs++;
			break;
		case PGP_TAG_SIGNATURE:
		case PGP_TAG_MARKER:
		case PGP_TAG_TRUST:
			break;
		default:
			if (s->bad_tag == 0)
				s->bad_tag = tag;
			break;
		}
	}
	s->truncated = r == -2;
	s->bad_header = r == -1;
	return r == 0;
}

/* The refusals the packet walk alone can decide, in the order users should see them. */
static enum keys_error keys_pgp_check_scan(const struct keys_pgp_scan *s, char **msg)
{
	if (s->secrets > 0)
		return keys_refuse(msg, KEYS_ERR_SECRET,
				   "This upload contains secret key material. It was discarded and "
				   "nothing was stored; upload only the public key (for example the "
				   "output of gpg --armor --export).");
	if (s->truncated)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "The OpenPGP data is truncated: a packet runs past the end of the "
				   "upload.");
	if (s->bad_header || s->first_tag == 0)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This is not an OpenPGP public key or an X.509 certificate.");
	if (s->bad_tag != 0)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This is not an OpenPGP public key: it contains a packet of type "
				   "%d, which has no place in a key.", s->bad_tag);
	if (s->first_tag != PGP_TAG_PUBLIC_KEY)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This is not an OpenPGP public key: it does not start with a "
				   "primary key.");
	if (s->primaries > 1)
		return keys_refuse(msg, KEYS_ERR_MULTIPLE,
				   "The upload holds %zu OpenPGP keys; upload exactly one public key.",
				   s->primaries);
	if (s->subkeys > KEYS_PGP_MAX_SUBKEYS || s->uids + s->user_attrs > KEYS_PGP_MAX_UIDS)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This key has %zu subkeys and %zu user IDs, more than a key "
				   "published here may have (%d and %d).", s->subkeys,
				   s->uids + s->user_attrs, KEYS_PGP_MAX_SUBKEYS, KEYS_PGP_MAX_UIDS);
	if (s->new_version)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This key uses OpenPGP key format version %d, which is not "
				   "supported here yet.", s->new_version);
	if (s->old_version)
		return keys_refuse(msg, KEYS_ERR_WEAK,
				   "This is an obsolete version %d OpenPGP key; create a new key.",
				   s->old_version);
	if (s->primary_elgamal)
		return keys_refuse(msg, KEYS_ERR_WEAK,
				   "This key's primary key uses ElGamal, which is not accepted.");
	if (s->unknown_alg)
		return keys_refuse(msg, KEYS_ERR_WEAK,
				   "This key uses public-key algorithm number %d, which is unknown or "
				   "no longer accepted.", s->unknown_alg);
	return KEYS_OK;
}

/*
 * Remove the ASCII armor. More than one armored block is refused: only the first would be
 * read, and the rest may be anything (a second key, a secret key).
 */
static enum keys_error keys_pgp_dearmor(const uint8_t *data, size_t len, uint8_t **out,
					size_t *outlen, char **msg)
{
	const uint8_t *first = memmem(data, len, "-----BEGIN PGP ", 15);
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	enum keys_error e = KEYS_OK;

	if (memmem(data, len, "PRIVATE KEY BLOCK-----", 22) != NULL)
		return keys_refuse(msg, KEYS_ERR_SECRET,
				   "This upload contains a PGP PRIVATE KEY BLOCK. It was discarded "
				   "and nothing was stored; upload only the public key (for example "
				   "the output of gpg --armor --export).");
	if (memmem(first + 15, len - (size_t)(first + 15 - data), "-----BEGIN PGP ", 15) != NULL)
		return keys_refuse(msg, KEYS_ERR_MULTIPLE,
				   "The upload holds more than one armored OpenPGP block; upload "
				   "exactly one public key.");
	if (memmem(first, len - (size_t)(first - data), "-----BEGIN PGP PUBLIC KEY BLOCK-----",
		   36) != first)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This armored OpenPGP data is not a PUBLIC KEY BLOCK.");
	if (rnp_input_from_memory(&in, data, len, false) != RNP_SUCCESS ||
	    rnp_output_to_memory(&o, KEYS_MAX_UPLOAD) != RNP_SUCCESS ||
	    rnp_dearmor(in, o) != RNP_SUCCESS ||
	    rnp_output_memory_get_buf(o, &buf, &n, false) != RNP_SUCCESS || n == 0) {
		e = keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				"The ASCII armor is damaged or incomplete and could not be decoded.");
	} else {
		*out = xmemdup(buf, n);
		*outlen = n;
	}
	rnp_input_destroy(in);
	rnp_output_destroy(o);	/* the memory output frees (and may clear) buf */
	return e;
}

/* A scratch keyring holding the key from a binary buffer; false if librnp refuses it. */
static bool keys_pgp_load(const uint8_t *bin, size_t len, uint32_t flags, rnp_ffi_t *ffi)
{
	rnp_input_t in = NULL;
	rnp_result_t r;

	if (rnp_ffi_create(ffi, "GPG", "GPG") != RNP_SUCCESS)
		fatalx("keys: rnp_ffi_create failed");
	if (rnp_input_from_memory(&in, bin, len, false) != RNP_SUCCESS) {
		rnp_ffi_destroy(*ffi);
		*ffi = NULL;
		return false;
	}
	r = rnp_import_keys(*ffi, in, flags, NULL);
	rnp_input_destroy(in);
	if (r != RNP_SUCCESS) {
		rnp_ffi_destroy(*ffi);
		*ffi = NULL;
		return false;
	}
	return true;
}

/* The primary key of a scratch keyring; false if there is none. */
static bool keys_pgp_primary(rnp_ffi_t ffi, rnp_key_handle_t *key, char fpr[65])
{
	rnp_identifier_iterator_t it = NULL;
	const char *id = NULL;
	bool found = false;

	*key = NULL;
	if (rnp_identifier_iterator_create(ffi, &it, "fingerprint") != RNP_SUCCESS)
		return false;
	while (!found && rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS && id != NULL) {
		rnp_key_handle_t k = NULL;
		bool primary = false;

		if (rnp_locate_key(ffi, "fingerprint", id, &k) != RNP_SUCCESS || k == NULL)
			continue;
		if (rnp_key_is_primary(k, &primary) == RNP_SUCCESS && primary &&
		    strlen(id) < 65) {
			snprintf(fpr, 65, "%s", id);
			*key = k;
			found = true;
		} else {
			rnp_key_handle_destroy(k);
		}
	}
	rnp_identifier_iterator_destroy(it);
	return found;
}

static void keys_pgp_close(struct keys_pgp_key *k)
{
	rnp_key_handle_destroy(k->key);
	rnp_ffi_destroy(k->ffi);
	k->key = NULL;
	k->ffi = NULL;
}

/* A string from librnp, copied to our allocator (NULL stays NULL). */
static char *keys_pgp_str(char *s)
{
	char *c = s ? xstrdup(s) : NULL;

	rnp_buffer_destroy(s);
	return c;
}

/* librnp's validity horizon: 0 never valid, UINT64_MAX no expiry. */
static uint64_t keys_pgp_till(rnp_key_handle_t k)
{
	uint64_t till = 0;

	if (rnp_key_valid_till64(k, &till) != RNP_SUCCESS)
		return 0;
	return till;
}

static bool keys_pgp_revoked(rnp_key_handle_t k)
{
	bool v = false;

	return rnp_key_is_revoked(k, &v) == RNP_SUCCESS && v;
}

static bool keys_pgp_allows(rnp_key_handle_t k, const char *usage)
{
	bool v = false;

	return rnp_key_allows_usage(k, usage, &v) == RNP_SUCCESS && v;
}

/* The text of user ID i if it is a user ID packet (not an attribute), else NULL. */
static char *keys_pgp_uid_text(rnp_key_handle_t key, size_t i, rnp_uid_handle_t *uidp)
{
	rnp_uid_handle_t uid = NULL;
	uint32_t type = 0;
	void *data = NULL;
	size_t n = 0;
	char *text = NULL;

	if (rnp_key_get_uid_handle_at(key, i, &uid) != RNP_SUCCESS || uid == NULL)
		return NULL;
	if (rnp_uid_get_type(uid, &type) == RNP_SUCCESS && type == RNP_USER_ID &&
	    rnp_uid_get_data(uid, &data, &n) == RNP_SUCCESS && n > 0 && n <= KEYS_MAX_UID &&
	    memchr(data, '\0', n) == NULL)
		text = xstrndup(data, n);
	rnp_buffer_destroy(data);
	if (uidp)
		*uidp = uid;
	else
		rnp_uid_handle_destroy(uid);
	return text;
}

/* Valid and not revoked: a user ID a correspondent's client would accept. */
static bool keys_pgp_uid_ok(rnp_uid_handle_t uid)
{
	bool valid = false, revoked = true;

	return rnp_uid_is_valid(uid, &valid) == RNP_SUCCESS && valid &&
	       rnp_uid_is_revoked(uid, &revoked) == RNP_SUCCESS && !revoked;
}

static enum keys_error keys_pgp_check_revoked(rnp_key_handle_t key, char **msg)
{
	rnp_signature_handle_t sig = NULL;
	uint32_t when = 0;
	char *reason = NULL, *r = NULL, *shown;
	char date[48] = "an unknown date";
	enum keys_error e;

	if (!keys_pgp_revoked(key))
		return KEYS_OK;
	if (rnp_key_get_revocation_signature(key, &sig) == RNP_SUCCESS && sig != NULL &&
	    rnp_signature_get_creation(sig, &when) == RNP_SUCCESS)
		keys_format_time(when, date, sizeof(date));
	rnp_signature_handle_destroy(sig);
	if (rnp_key_get_revocation_reason(key, &r) == RNP_SUCCESS)
		reason = keys_pgp_str(r);
	shown = keys_printable(reason && *reason ? reason : "none given", 120);
	e = keys_refuse(msg, KEYS_ERR_REVOKED,
			"This key was revoked by its owner on %s (reason: %s) and cannot be "
			"published.", date, shown);
	free(shown);
	free(reason);
	return e;
}

/* A margin in words: "7 days", "12h". */
static void keys_pgp_margin(int64_t margin, char *buf, size_t len)
{
	if (margin >= 86400 && margin % 86400 == 0)
		snprintf(buf, len, "%lld days", (long long)(margin / 86400));
	else
		format_duration(margin, buf, len);
}

/* Expired, or expiring within the margin: what the check names. */
static enum keys_error keys_pgp_expiry_refusal(const char *what, uint64_t till,
					       const struct keys_policy *policy, char **msg)
{
	char date[48], margin[32];

	keys_format_time((int64_t)till, date, sizeof(date));
	if ((int64_t)till <= policy->now)
		return keys_refuse(msg, KEYS_ERR_EXPIRED, "%s expired on %s.", what, date);
	keys_pgp_margin(policy->expiry_margin, margin, sizeof(margin));
	return keys_refuse(msg, KEYS_ERR_EXPIRED,
			   "%s expires on %s, within the next %s; extend its expiry date and "
			   "upload it again.", what, date, margin);
}

/* Whether till (librnp's horizon) reaches past now + margin. */
static bool keys_pgp_lasts(uint64_t till, const struct keys_policy *policy)
{
	if (till == UINT64_MAX)
		return true;
	if (till > (uint64_t)INT64_MAX)
		return true;
	return (int64_t)till > policy->now + policy->expiry_margin;
}

/* RSA and DSA below the minimum, ElGamal: refused. what names the key for the message. */
static enum keys_error keys_pgp_check_strength(rnp_key_handle_t k, const char *what, char **msg)
{
	char *alg = NULL;
	uint32_t bits = 0;
	enum keys_error e = KEYS_OK;

	if (rnp_key_get_alg(k, &alg) != RNP_SUCCESS || alg == NULL)
		return keys_refuse(msg, KEYS_ERR_WEAK, "%s uses an unknown algorithm.", what);
	rnp_key_get_bits(k, &bits);
	if ((strcmp(alg, "RSA") == 0 || strcmp(alg, "DSA") == 0) && bits < KEYS_PGP_MIN_BITS)
		e = keys_refuse(msg, KEYS_ERR_WEAK,
				"%s uses %s with %u bits; at least %d bits are required.", what,
				alg, bits, KEYS_PGP_MIN_BITS);
	else if (strcmp(alg, "ELGAMAL") == 0)
		e = keys_refuse(msg, KEYS_ERR_WEAK,
				"%s uses ElGamal, which is no longer accepted.", what);
	else if (strcmp(alg, "RSA") != 0 && strcmp(alg, "DSA") != 0 && strcmp(alg, "ECDH") != 0 &&
		 strcmp(alg, "ECDSA") != 0 && strcmp(alg, "EDDSA") != 0)
		e = keys_refuse(msg, KEYS_ERR_WEAK,
				"%s uses the algorithm %s, which is not accepted.", what, alg);
	rnp_buffer_destroy(alg);
	return e;
}

/* The fingerprint of a subkey handle into fpr (65 bytes); empty on failure. */
static void keys_pgp_fpr(rnp_key_handle_t k, char fpr[65])
{
	char *f = NULL;

	fpr[0] = '\0';
	if (rnp_key_get_fprint(k, &f) == RNP_SUCCESS && f != NULL && strlen(f) < 65)
		snprintf(fpr, 65, "%s", f);
	rnp_buffer_destroy(f);
}

/*
 * Decide which subkeys are published (valid now, not revoked), check their strength, and
 * that the key can receive encrypted mail for at least policy->expiry_margin.
 * keep[] receives the fingerprints of the subkeys to keep (*nkeep of them).
 */
static enum keys_error keys_pgp_check_subkeys(rnp_key_handle_t key,
					      const struct keys_policy *policy,
					      char (*keep)[65], size_t *nkeep, uint64_t *enc_till,
					      char **msg)
{
	size_t n = 0;
	bool can_encrypt = false;
	uint64_t best_enc_till = 0;
	enum keys_error e = KEYS_OK;

	*nkeep = 0;
	*enc_till = 0;
	if (keys_pgp_allows(key, "encrypt")) {
		uint64_t till = keys_pgp_till(key);

		if (keys_pgp_lasts(till, policy)) {
			can_encrypt = true;
			*enc_till = till;
		}
		best_enc_till = till;
	}
	rnp_key_get_subkey_count(key, &n);
	for (size_t i = 0; i < n && i < KEYS_PGP_MAX_SUBKEYS && e == KEYS_OK; i++) {
		rnp_key_handle_t sub = NULL;
		uint64_t till;
		char what[96];

		if (rnp_key_get_subkey_at(key, i, &sub) != RNP_SUCCESS || sub == NULL)
			continue;
		till = keys_pgp_till(sub);
		if (!keys_pgp_revoked(sub) && till != 0 &&
		    (till == UINT64_MAX || till > (uint64_t)policy->now)) {
			keys_pgp_fpr(sub, keep[*nkeep]);
			snprintf(what, sizeof(what), "This key's subkey %s", keep[*nkeep]);
			if (keep[*nkeep][0] != '\0')
				(*nkeep)++;
			e = keys_pgp_check_strength(sub, what, msg);
			if (keys_pgp_allows(sub, "encrypt")) {
				if (keys_pgp_lasts(till, policy)) {
					can_encrypt = true;
					if (till > *enc_till)
						*enc_till = till;
				}
				if (till > best_enc_till)
					best_enc_till = till;
			}
		} else if (keys_pgp_allows(sub, "encrypt") && !keys_pgp_revoked(sub) &&
			   till > best_enc_till) {
			best_enc_till = till;
		}
		rnp_key_handle_destroy(sub);
	}
	if (e != KEYS_OK || can_encrypt)
		return e;
	if (best_enc_till != 0)
		return keys_pgp_expiry_refusal("This key's newest encryption subkey",
					       best_enc_till, policy, msg);
	return keys_refuse(msg, KEYS_ERR_NO_ENCRYPTION,
			   "This key has no valid encryption subkey, so nobody could encrypt mail "
			   "to it; add an encryption subkey (gpg --quick-add-key FINGERPRINT "
			   "cv25519 encr) and upload it again.");
}

/*
 * Pick, for each allowed address, the user ID carrying it: valid, not revoked, the primary
 * one first. Counts the valid user IDs into *nvalid and lists their addresses in *found.
 */
static void keys_pgp_match_uids(rnp_key_handle_t key, char *const *allowed, size_t nallowed,
				struct keys_pgp_match *match, size_t *nvalid, char **found)
{
	size_t n = 0;

	*nvalid = 0;
	rnp_key_get_uid_count(key, &n);
	for (size_t i = 0; i < n && i < KEYS_PGP_MAX_UIDS; i++) {
		rnp_uid_handle_t uid = NULL;
		char *text = keys_pgp_uid_text(key, i, &uid), *addr;
		bool primary = false;
		int idx;

		if (text == NULL || !keys_pgp_uid_ok(uid)) {
			rnp_uid_handle_destroy(uid);
			free(text);
			continue;
		}
		(*nvalid)++;
		addr = keys_uid_address(text);
		if (addr && strlen(*found) < 200) {
			char *shown = keys_printable(addr, 100), *f;

			f = xasprintf("%s%s%s", *found, **found ? ", " : "", shown);
			free(*found);
			free(shown);
			*found = f;
		}
		idx = addr ? keys_allowed_index(addr, allowed, nallowed) : -1;
		rnp_uid_is_primary(uid, &primary);
		rnp_uid_handle_destroy(uid);
		if (idx >= 0 && (match[idx].uid == NULL || primary)) {
			free(match[idx].uid);
			free(match[idx].addr);
			match[idx].uid = text;
			match[idx].addr = addr;
			continue;
		}
		free(text);
		free(addr);
	}
}

/* Which signatures survive one pass of rnp_key_remove_signatures. */
struct keys_pgp_sigfilter {
	const char *decide;	/* "uid", "direct" or "binding": the class this pass rules on */
	uint32_t newest;	/* creation time of the newest valid signature of that class */
	bool kept;		/* the newest one was kept already */
};

/* The class of a signature type from librnp, or NULL for types never published. */
static const char *keys_pgp_sig_class(const char *type)
{
	if (strncmp(type, "certification (", 15) == 0)
		return "uid";
	if (strcmp(type, "direct") == 0)
		return "direct";
	if (strcmp(type, "subkey binding") == 0)
		return "binding";
	return NULL;
}

/* Callback: keep only the newest valid self-signature of the class being decided. */
static void keys_pgp_sig_cb(rnp_ffi_t ffi, void *ctx, rnp_signature_handle_t sig,
			    uint32_t *action)
{
	struct keys_pgp_sigfilter *f = ctx;
	char *type = NULL;
	const char *cls;
	uint32_t created = 0;

	(void)ffi;
	if (*action == RNP_KEY_SIGNATURE_REMOVE)
		return;
	if (rnp_signature_get_type(sig, &type) != RNP_SUCCESS || type == NULL) {
		*action = RNP_KEY_SIGNATURE_REMOVE;
		return;
	}
	cls = keys_pgp_sig_class(type);
	rnp_buffer_destroy(type);
	if (cls == NULL) {
		/* Revocations of parts still valid are invalid or superseded; the rest is
		 * not a key's business. */
		*action = RNP_KEY_SIGNATURE_REMOVE;
		return;
	}
	if (strcmp(cls, f->decide) != 0)
		return;
	if (!f->kept && rnp_signature_is_valid(sig, 0) == RNP_SUCCESS &&
	    rnp_signature_get_creation(sig, &created) == RNP_SUCCESS && created == f->newest) {
		f->kept = true;
		return;
	}
	*action = RNP_KEY_SIGNATURE_REMOVE;
}

/*
 * Fold one signature into "newest valid creation time so far": counted when its type
 * names class cls (cls NULL: any certification of a user ID). The handle is destroyed.
 */
static uint32_t keys_pgp_newest_fold(rnp_signature_handle_t sig, const char *cls, uint32_t newest)
{
	char *type = NULL;
	uint32_t c = 0;
	bool wanted;

	if (rnp_signature_get_type(sig, &type) == RNP_SUCCESS && type != NULL) {
		const char *tcls = keys_pgp_sig_class(type);

		wanted = cls ? tcls != NULL && strcmp(tcls, cls) == 0 :
			       strncmp(type, "certification (", 15) == 0;
		if (wanted && rnp_signature_is_valid(sig, 0) == RNP_SUCCESS &&
		    rnp_signature_get_creation(sig, &c) == RNP_SUCCESS && c > newest)
			newest = c;
	}
	rnp_buffer_destroy(type);
	rnp_signature_handle_destroy(sig);
	return newest;
}

/* Newest valid signature of class cls among a key's own (direct or binding) signatures. */
static uint32_t keys_pgp_newest_key_sig(rnp_key_handle_t k, const char *cls)
{
	size_t n = 0;
	uint32_t newest = 0;

	rnp_key_get_signature_count(k, &n);
	for (size_t i = 0; i < n; i++) {
		rnp_signature_handle_t sig = NULL;

		if (rnp_key_get_signature_at(k, i, &sig) == RNP_SUCCESS)
			newest = keys_pgp_newest_fold(sig, cls, newest);
	}
	return newest;
}

/* Newest valid certification on a user ID. */
static uint32_t keys_pgp_newest_uid_sig(rnp_uid_handle_t uid)
{
	size_t n = 0;
	uint32_t newest = 0;

	rnp_uid_get_signature_count(uid, &n);
	for (size_t i = 0; i < n; i++) {
		rnp_signature_handle_t sig = NULL;

		if (rnp_uid_get_signature_at(uid, i, &sig) == RNP_SUCCESS)
			newest = keys_pgp_newest_fold(sig, NULL, newest);
	}
	return newest;
}

/* Drop every user ID and attribute except the one whose text is keep_uid. */
static bool keys_pgp_keep_one_uid(rnp_key_handle_t key, const char *keep_uid)
{
	size_t n = 0;
	bool kept = false;

	rnp_key_get_uid_count(key, &n);
	for (size_t i = n; i-- > 0;) {
		rnp_uid_handle_t uid = NULL;
		char *text = keys_pgp_uid_text(key, i, &uid);

		if (uid == NULL) {
			free(text);
			return false;
		}
		if (!kept && text && strcmp(text, keep_uid) == 0 && keys_pgp_uid_ok(uid)) {
			kept = true;
		} else if (rnp_uid_remove(key, uid) != RNP_SUCCESS) {
			rnp_uid_handle_destroy(uid);
			free(text);
			return false;
		}
		rnp_uid_handle_destroy(uid);
		free(text);
	}
	return kept;
}

/* Drop the subkeys whose fingerprints are not in keep[]. */
static bool keys_pgp_keep_subkeys(rnp_key_handle_t key, char (*keep)[65], size_t nkeep)
{
	size_t n = 0;

	rnp_key_get_subkey_count(key, &n);
	for (size_t i = n; i-- > 0;) {
		rnp_key_handle_t sub = NULL;
		char fpr[65];
		bool wanted = false;

		if (rnp_key_get_subkey_at(key, i, &sub) != RNP_SUCCESS || sub == NULL)
			return false;
		keys_pgp_fpr(sub, fpr);
		for (size_t j = 0; j < nkeep; j++)
			if (strcmp(fpr, keep[j]) == 0)
				wanted = true;
		if (!wanted && rnp_key_remove(sub, RNP_KEY_REMOVE_PUBLIC) != RNP_SUCCESS) {
			rnp_key_handle_destroy(sub);
			return false;
		}
		rnp_key_handle_destroy(sub);
	}
	return true;
}

/* Remove third-party, invalid and superseded signatures: one self-signature per part. */
static bool keys_pgp_prune_sigs(rnp_key_handle_t key)
{
	const uint32_t flags = RNP_KEY_SIGNATURE_NON_SELF_SIG | RNP_KEY_SIGNATURE_INVALID |
			       RNP_KEY_SIGNATURE_UNKNOWN_KEY;
	struct keys_pgp_sigfilter f = { .decide = "uid" };
	rnp_uid_handle_t uid = NULL;
	size_t n = 0;

	if (rnp_key_get_uid_handle_at(key, 0, &uid) != RNP_SUCCESS)
		return false;
	f.newest = keys_pgp_newest_uid_sig(uid);
	rnp_uid_handle_destroy(uid);
	if (rnp_key_remove_signatures(key, flags, keys_pgp_sig_cb, &f) != RNP_SUCCESS || !f.kept)
		return false;
	f = (struct keys_pgp_sigfilter){ .decide = "direct",
					 .newest = keys_pgp_newest_key_sig(key, "direct") };
	if (rnp_key_remove_signatures(key, flags, keys_pgp_sig_cb, &f) != RNP_SUCCESS)
		return false;
	rnp_key_get_subkey_count(key, &n);
	for (size_t i = 0; i < n; i++) {
		rnp_key_handle_t sub = NULL;
		bool ok;

		if (rnp_key_get_subkey_at(key, i, &sub) != RNP_SUCCESS || sub == NULL)
			return false;
		f = (struct keys_pgp_sigfilter){ .decide = "binding",
						 .newest = keys_pgp_newest_key_sig(sub, "binding") };
		ok = rnp_key_remove_signatures(sub, flags, keys_pgp_sig_cb, &f) == RNP_SUCCESS &&
		     f.kept;
		rnp_key_handle_destroy(sub);
		if (!ok)
			return false;
	}
	return true;
}

/* Export the public key with its subkeys, binary. */
static bool keys_pgp_export(rnp_key_handle_t key, uint8_t **out, size_t *outlen)
{
	rnp_output_t o = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	bool ok;

	if (rnp_output_to_memory(&o, 0) != RNP_SUCCESS)
		return false;
	ok = rnp_key_export(key, o, RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS) ==
		     RNP_SUCCESS &&
	     rnp_output_memory_get_buf(o, &buf, &n, false) == RNP_SUCCESS && n > 0;
	if (ok) {
		*out = xmemdup(buf, n);
		*outlen = n;
	}
	rnp_output_destroy(o);
	return ok;
}

/*
 * Read a minimised copy back: one public primary key, exactly the one user ID, no
 * attributes, no secrets, valid, and still able to receive encrypted mail.
 */
static bool keys_pgp_verify_copy(const uint8_t *bin, size_t len, const char *uid_text,
				 const struct keys_policy *policy)
{
	struct keys_pgp_scan s;
	struct keys_pgp_key k = { 0 };
	char (*keep)[65] = xcalloc(KEYS_PGP_MAX_SUBKEYS, sizeof(*keep));
	size_t nkeep = 0;
	uint64_t enc_till;
	char *text;
	bool ok;

	ok = keys_pgp_scan(bin, len, &s) && s.primaries == 1 && s.secrets == 0 && s.uids == 1 &&
	     s.user_attrs == 0 && s.bad_tag == 0;
	if (ok)
		ok = keys_pgp_load(bin, len, RNP_LOAD_SAVE_PUBLIC_KEYS, &k.ffi) &&
		     keys_pgp_primary(k.ffi, &k.key, k.fpr);
	if (ok) {
		text = keys_pgp_uid_text(k.key, 0, NULL);
		ok = text != NULL && strcmp(text, uid_text) == 0 &&
		     keys_pgp_check_subkeys(k.key, policy, keep, &nkeep, &enc_till, NULL) ==
			     KEYS_OK;
		free(text);
	}
	keys_pgp_close(&k);
	free(keep);
	return ok;
}

/* Build the minimised copy of bin for one user ID. */
static enum keys_error keys_pgp_minimise(const uint8_t *bin, size_t len,
					 const struct keys_pgp_match *m, char (*keep)[65],
					 size_t nkeep, const struct keys_policy *policy,
					 struct keys_info *info, char **msg)
{
	struct keys_pgp_key k = { 0 };
	uint8_t *out = NULL;
	size_t outlen = 0;
	bool ok;

	ok = keys_pgp_load(bin, len, RNP_LOAD_SAVE_PUBLIC_KEYS, &k.ffi) &&
	     keys_pgp_primary(k.ffi, &k.key, k.fpr) && keys_pgp_keep_one_uid(k.key, m->uid) &&
	     keys_pgp_keep_subkeys(k.key, keep, nkeep) && keys_pgp_prune_sigs(k.key) &&
	     keys_pgp_export(k.key, &out, &outlen);
	keys_pgp_close(&k);
	if (!ok || !keys_pgp_verify_copy(out, outlen, m->uid, policy)) {
		free(out);
		log_warn("event=keys-minimise-failed fpr=%s", info->fingerprint);
		return keys_refuse(msg, KEYS_ERR_NO_SELFSIG,
				   "This key could not be reduced to a copy for %s that carries a "
				   "valid self-signature.", m->addr);
	}
	if (policy->max_record_size > 0 && outlen > policy->max_record_size) {
		free(out);
		return keys_refuse(msg, KEYS_ERR_RECORD_SIZE,
				   "The published copy of this key for %s would be %zu bytes, more "
				   "than the limit of %zu bytes; remove unneeded subkeys, or use an "
				   "elliptic-curve key (Ed25519/Cv25519).", m->addr, outlen,
				   policy->max_record_size);
	}
	keys_add_copy(info, xstrdup(m->addr), out, outlen);
	return KEYS_OK;
}

/* Fingerprint, algorithm, size and dates of the primary key. */
static void keys_pgp_fill_info(rnp_key_handle_t key, const char *fpr, struct keys_info *info)
{
	char *alg = NULL;
	uint32_t bits = 0, created = 0, expiration = 0;

	info->kind = KEYS_OPENPGP;
	snprintf(info->fingerprint, sizeof(info->fingerprint), "%s", fpr);
	if (rnp_key_get_alg(key, &alg) == RNP_SUCCESS && alg)
		snprintf(info->algorithm, sizeof(info->algorithm), "%s", alg);
	rnp_buffer_destroy(alg);
	rnp_key_get_bits(key, &bits);
	rnp_key_get_creation(key, &created);
	rnp_key_get_expiration(key, &expiration);
	info->bits = bits;
	info->created = created;
	/* Refined in keys_pgp_check once the encryption subkeys are known. */
	info->expires = expiration ? (int64_t)created + expiration : 0;
}

/* "a@x, b@y" for the message naming the allowed addresses (at most three). */
static char *keys_pgp_allowed_list(char *const *allowed, size_t nallowed)
{
	char *list = xstrdup("");

	for (size_t i = 0; i < nallowed && i < 3; i++) {
		char *shown = keys_printable(allowed[i] ? allowed[i] : "", 100);
		char *l = xasprintf("%s%s%s", list, i ? ", " : "", shown);

		free(shown);
		free(list);
		list = l;
	}
	if (nallowed > 3) {
		char *l = xasprintf("%s, ...", list);

		free(list);
		list = l;
	}
	return list;
}

/* The checks of an imported key, in the order a user should learn about problems. */
static enum keys_error keys_pgp_check(struct keys_pgp_key *k, const uint8_t *bin, size_t len,
				      char *const *allowed, size_t nallowed,
				      const struct keys_policy *policy, struct keys_info *info,
				      char **msg)
{
	struct keys_pgp_match *match = xcalloc(nallowed ? nallowed : 1, sizeof(*match));
	char (*keep)[65] = xcalloc(KEYS_PGP_MAX_SUBKEYS, sizeof(*keep));
	size_t nkeep = 0, nvalid = 0;
	char *found = xstrdup("");
	uint64_t till = keys_pgp_till(k->key), enc_till = 0;
	enum keys_error e;
	bool have_secret = false;

	keys_pgp_fill_info(k->key, k->fpr, info);
	keys_pgp_match_uids(k->key, allowed, nallowed, match, &nvalid, &found);
	if (rnp_key_have_secret(k->key, &have_secret) != RNP_SUCCESS || have_secret)
		e = keys_refuse(msg, KEYS_ERR_SECRET,
				"This upload contains secret key material. It was discarded and "
				"nothing was stored; upload only the public key.");
	else if ((e = keys_pgp_check_revoked(k->key, msg)) != KEYS_OK)
		;
	else if (till == 0 || nvalid == 0)
		e = keys_refuse(msg, KEYS_ERR_NO_SELFSIG,
				"This key has no valid self-signature on any user ID, so nothing "
				"shows that its user IDs belong to it.");
	else if (!keys_pgp_lasts(till, policy))
		e = keys_pgp_expiry_refusal("This key", till, policy, msg);
	else if ((e = keys_pgp_check_strength(k->key, "This key", msg)) != KEYS_OK)
		;
	else if ((e = keys_pgp_check_subkeys(k->key, policy, keep, &nkeep, &enc_till, msg)) !=
		 KEYS_OK)
		;
	else {
		/* Useful until the last encryption (sub)key ends, and no longer than the key. */
		if (enc_till < till)
			till = enc_till;
		info->expires = till == UINT64_MAX || till > (uint64_t)INT64_MAX ? 0 : (int64_t)till;
		e = KEYS_ERR_NO_ADDRESS;
		for (size_t i = 0; i < nallowed; i++) {
			if (match[i].uid == NULL)
				continue;
			e = keys_pgp_minimise(bin, len, &match[i], keep, nkeep, policy, info, msg);
			if (e != KEYS_OK)
				break;
		}
		if (e == KEYS_ERR_NO_ADDRESS) {
			char *list = keys_pgp_allowed_list(allowed, nallowed);

			keys_refuse(msg, e, "None of this key's valid user IDs is %s%s; it has: %s.",
				    nallowed > 1 ? "one of " : "", list,
				    *found ? found : "no e-mail address");
			free(list);
		}
	}
	for (size_t i = 0; i < nallowed; i++) {
		free(match[i].uid);
		free(match[i].addr);
	}
	free(match);
	free(keep);
	free(found);
	return e;
}

enum keys_error keys_pgp_accept(const uint8_t *data, size_t len, char *const *allowed,
				size_t nallowed, const struct keys_policy *policy,
				struct keys_info *info, char **msg)
{
	struct keys_pgp_scan scan;
	struct keys_pgp_key k = { 0 };
	uint8_t *bin = NULL;
	size_t binlen = len;
	enum keys_error e;

	if (memmem(data, len, "-----BEGIN PGP ", 15) != NULL) {
		e = keys_pgp_dearmor(data, len, &bin, &binlen, msg);
		if (e != KEYS_OK)
			return e;
	} else {
		bin = xmemdup(data, len);
	}
	keys_pgp_scan(bin, binlen, &scan);
	e = keys_pgp_check_scan(&scan, msg);
	if (e == KEYS_OK) {
		/* Secret keys too, so that librnp's own view confirms the packet walk. */
		if (!keys_pgp_load(bin, binlen, RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS,
				   &k.ffi) ||
		    !keys_pgp_primary(k.ffi, &k.key, k.fpr))
			e = keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
					"This OpenPGP key is damaged or uses a format that cannot be "
					"read.");
		else
			e = keys_pgp_check(&k, bin, binlen, allowed, nallowed, policy, info, msg);
		keys_pgp_close(&k);
	}
	/* The buffer may hold secret material that was refused: clear it. */
	OPENSSL_cleanse(bin, binlen);
	free(bin);
	return e;
}

char *keys_armor(const uint8_t *data, size_t len)
{
	rnp_input_t in = NULL;
	rnp_output_t o = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	char *text = NULL;

	if (rnp_input_from_memory(&in, data, len, false) == RNP_SUCCESS &&
	    rnp_output_to_memory(&o, 0) == RNP_SUCCESS &&
	    rnp_enarmor(in, o, "public key") == RNP_SUCCESS &&
	    rnp_output_memory_get_buf(o, &buf, &n, false) == RNP_SUCCESS && n > 0)
		text = xstrndup((const char *)buf, n);
	rnp_input_destroy(in);
	rnp_output_destroy(o);
	if (text) {
		/* librnp writes CRLF; JSON consumers and terminals expect plain newlines. */
		char *w = text;

		for (const char *r = text; *r; r++)
			if (!(r[0] == '\r' && r[1] == '\n'))
				*w++ = *r;
		*w = '\0';
	}
	return text;
}
