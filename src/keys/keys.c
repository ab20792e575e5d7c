/*
 * keys.c - keys_accept: tell OpenPGP from X.509 input and hand it to keys_pgp.c or
 * keys_smime.c; error names and the helpers both share (user ID addresses, messages).
 */
#include "keys/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/pem.h>

#include "keys/keys_int.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

static const char *const keys_error_names[] = {
	[KEYS_OK] = "ok",
	[KEYS_ERR_NOT_A_KEY] = "not-a-key",
	[KEYS_ERR_TOO_BIG] = "too-big",
	[KEYS_ERR_MULTIPLE] = "multiple-keys",
	[KEYS_ERR_SECRET] = "secret-key",
	[KEYS_ERR_NO_SELFSIG] = "no-self-signature",
	[KEYS_ERR_REVOKED] = "revoked",
	[KEYS_ERR_EXPIRED] = "expired",
	[KEYS_ERR_WEAK] = "weak",
	[KEYS_ERR_NO_ENCRYPTION] = "no-encryption-key",
	[KEYS_ERR_NO_ADDRESS] = "no-matching-address",
	[KEYS_ERR_RECORD_SIZE] = "too-large-for-record",
};

const char *keys_error_name(enum keys_error e)
{
	if ((size_t)e >= sizeof(keys_error_names) / sizeof(keys_error_names[0]) ||
	    keys_error_names[e] == NULL)
		return "unknown";
	return keys_error_names[e];
}

const char *keys_kind_name(enum keys_kind k)
{
	return k == KEYS_SMIME ? "smime" : "openpgp";
}

void keys_info_free(struct keys_info *info)
{
	if (info == NULL)
		return;
	for (size_t i = 0; i < info->ncopies; i++) {
		free(info->copies[i].address);
		free(info->copies[i].data);
	}
	free(info->copies);
	info->copies = NULL;
	info->ncopies = 0;
}

enum keys_error keys_refuse(char **msg, enum keys_error e, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL)
		return e;
	free(*msg);
	va_start(ap, fmt);
	*msg = xvasprintf(fmt, ap);
	va_end(ap);
	return e;
}

char *keys_uid_address(const char *uid)
{
	const char *lt, *gt;
	char *addr;
	size_t len = strlen(uid);

	if (len == 0 || len > KEYS_MAX_UID)
		return NULL;
	gt = uid + len - 1;
	while (gt > uid && (*gt == ' ' || *gt == '\t'))
		gt--;
	if (*gt == '>') {
		lt = gt;
		while (lt > uid && lt[-1] != '<')
			lt--;
		if (lt == uid)
			return NULL;
		addr = xstrndup(lt, (size_t)(gt - lt));
	} else {
		addr = xstrndup(uid, (size_t)(gt - uid) + 1);
	}
	if (!addr_valid(addr)) {
		free(addr);
		return NULL;
	}
	return addr;
}

int keys_allowed_index(const char *addr, char *const *allowed, size_t nallowed)
{
	for (size_t i = 0; i < nallowed; i++)
		if (allowed[i] != NULL && strcasecmp(addr, allowed[i]) == 0)
			return (int)i;
	return -1;
}

void keys_format_time(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

char *keys_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *out = xstrndup(s, n);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			out[i] = '?';
	return out;
}

void keys_add_copy(struct keys_info *info, char *address, uint8_t *data, size_t len)
{
	info->copies = xreallocarray(info->copies, info->ncopies + 1, sizeof(*info->copies));
	info->copies[info->ncopies].address = address;
	info->copies[info->ncopies].data = data;
	info->copies[info->ncopies].len = len;
	info->ncopies++;
}

void keys_hex(const uint8_t *p, size_t n, char *out, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* OpenPGP armor anywhere in the input: a text upload may carry a note before it. */
static bool keys_is_pgp_armor(const uint8_t *data, size_t len)
{
	return memmem(data, len, "-----BEGIN PGP ", 15) != NULL;
}

static bool keys_is_pem(const uint8_t *data, size_t len)
{
	return memmem(data, len, "-----BEGIN ", 11) != NULL;
}

/* Refuse what is neither; hand the rest to the module for its kind. */
static enum keys_error keys_dispatch(const uint8_t *data, size_t len, char *const *allowed,
				     size_t nallowed, const struct keys_policy *policy,
				     struct keys_info *info, char **msg)
{
	if (len > KEYS_MAX_UPLOAD)
		return keys_refuse(msg, KEYS_ERR_TOO_BIG,
				   "The upload is %zu bytes; a public key or certificate must be "
				   "at most %d bytes.", len, KEYS_MAX_UPLOAD);
	if (len == 0)
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY, "The upload is empty.");
	if (keys_is_pgp_armor(data, len))
		return keys_pgp_accept(data, len, allowed, nallowed, policy, info, msg);
	if (keys_is_pem(data, len) || data[0] == 0x30)
		return keys_smime_accept(data, len, allowed, nallowed, policy, info, msg);
	if (data[0] & 0x80)
		return keys_pgp_accept(data, len, allowed, nallowed, policy, info, msg);
	return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
			   "This is neither an OpenPGP public key nor an X.509 certificate.");
}

enum keys_error keys_accept(const uint8_t *data, size_t len, char *const *allowed, size_t nallowed,
			    const struct keys_policy *policy, struct keys_info *info, char **msg)
{
	enum keys_error e;

	memset(info, 0, sizeof(*info));
	if (msg)
		*msg = NULL;
	e = keys_dispatch(data, len, allowed, nallowed, policy, info, msg);
	if (e != KEYS_OK) {
		/* Keep what was learnt about the key (for logs); publish nothing. */
		keys_info_free(info);
	} else if (msg) {
		free(*msg);
		*msg = NULL;
	}
	return e;
}

char *keys_text(enum keys_kind kind, const uint8_t *data, size_t len)
{
	BIO *bio;
	char *mem, *text = NULL;
	long n;

	if (kind == KEYS_OPENPGP)
		return keys_armor(data, len);
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL)
		fatalx("keys: out of memory");
	if (PEM_write_bio(bio, "CERTIFICATE", "", data, (long)len) > 0 &&
	    (n = BIO_get_mem_data(bio, &mem)) > 0)
		text = xstrndup(mem, (size_t)n);
	BIO_free(bio);
	return text;
}
