/*
 * keys_names.c - the names keys are published under: OPENPGPKEY (RFC 7929) and SMIMEA
 * (RFC 8162) owner names, the Web Key Directory hash, and z-base-32 for the latter.
 */
#include "keys/keys.h"

#include <ctype.h>
#include <string.h>

#include <openssl/evp.h>

#include "keys/keys_int.h"
#include "log.h"
#include "xmalloc.h"

#define KEYS_DANE_HASH_LEN 28	/* RFC 7929 section 3: SHA-256 truncated to 224 bits */

static const char keys_zbase32_alphabet[] = "ybndrfg8ejkmcpqxot1uwisza345h769";

char *keys_zbase32(const uint8_t *data, size_t len)
{
	size_t nbits = len * 8, n = (nbits + 4) / 5;
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		size_t bit = i * 5;
		unsigned v = 0;

		/* Take 5 bits starting at bit (most significant first), zero-padded. */
		for (size_t b = 0; b < 5; b++) {
			size_t at = bit + b;
			v <<= 1;
			if (at < nbits)
				v |= (data[at / 8] >> (7 - at % 8)) & 1;
		}
		out[i] = keys_zbase32_alphabet[v];
	}
	out[n] = '\0';
	return out;
}

/* One-shot digest; md is SHA-1 or SHA-256, out large enough. */
static void keys_digest(const EVP_MD *md, const void *p, size_t n, uint8_t *out)
{
	unsigned int outlen;

	if (EVP_Digest(p, n, out, &outlen, md, NULL) != 1)
		fatalx("keys: digest failed");
}

char *keys_wkd_hash(const char *local_part)
{
	uint8_t sha1[20];
	char *lower = xstrdup(local_part);

	/* GnuPG folds ASCII only: non-ASCII bytes of a UTF-8 local-part stay as they are. */
	for (char *p = lower; *p; p++)
		if ((unsigned char)*p < 0x80)
			*p = (char)tolower((unsigned char)*p);
	keys_digest(EVP_sha1(), lower, strlen(lower), sha1);
	free(lower);
	return keys_zbase32(sha1, sizeof(sha1));
}

char *keys_dane_name(const char *address, const char *label)
{
	uint8_t sha[32];
	char hex[2 * KEYS_DANE_HASH_LEN + 1];
	const char *at;
	char *domain, *name;
	size_t dlen;

	if (address == NULL || label == NULL || *label == '\0')
		return NULL;
	at = strrchr(address, '@');
	if (at == NULL || at == address || at[1] == '\0')
		return NULL;
	keys_digest(EVP_sha256(), address, (size_t)(at - address), sha);
	keys_hex(sha, KEYS_DANE_HASH_LEN, hex, false);
	/* DNS names compare case-insensitively: publish the domain in lower case, no root dot. */
	domain = xstrdup(at + 1);
	for (char *p = domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	dlen = strlen(domain);
	if (dlen > 0 && domain[dlen - 1] == '.')
		domain[dlen - 1] = '\0';
	if (*domain == '\0') {
		free(domain);
		return NULL;
	}
	name = xasprintf("%s.%s.%s", hex, label, domain);
	free(domain);
	return name;
}
