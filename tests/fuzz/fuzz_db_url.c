/*
 * fuzz_db_url.c - libFuzzer target: hiding the password of a [database] url before it is
 * shown. Whatever the text, the result must keep no user-info password and no value of a
 * password= parameter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does the authority part ("scheme://AUTH@") still hold a ':'? */
static int userinfo_has_password(const char *url)
{
	const char *auth = strstr(url, "://"), *at, *slash;

	if (auth == NULL)
		return 0;
	auth += 3;
	at = strchr(auth, '@');
	slash = strchr(auth, '/');
	if (at == NULL || (slash != NULL && slash < at))
		return 0;
	return memchr(auth, ':', (size_t)(at - auth)) != NULL;
}

/* Is every password= parameter's value "***"? */
static int parameters_hidden(const char *url)
{
	for (const char *p = url; (p = strstr(p, "password=")) != NULL; p++) {
		if (p > url && (p[-1] == '?' || p[-1] == '&') &&
		    strncmp(p + 9, "***", 3) != 0)
			return 0;
		if (p > url && (p[-1] == '?' || p[-1] == '&') && p[12] != '\0' && p[12] != '&')
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, *out;

	if (size > 4096)	/* a config value is one line of a bounded file */
		return 0;
	in = malloc(size + 1);
	memcpy(in, data, size);
	in[size] = '\0';
	out = db_url_redact(in);
	if (userinfo_has_password(out) || !parameters_hidden(out))
		abort();
	free(out);
	free(in);
	return 0;
}
