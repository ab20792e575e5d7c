/*
 * keyfix.h - the generated key fixtures shared by the key unit tests.
 *
 * keyfix_generate runs tests/unit/keys/gen-keys.py (GnuPG in a private home, and
 * python3-cryptography for S/MIME) into a fresh temporary directory; the tests read the
 * files by name and the fingerprints gen-keys.py recorded in fingerprints.txt.
 */
#ifndef PW_KEYFIX_H
#define PW_KEYFIX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "xmalloc.h"

static char keyfix_dir[256];

/* Generate the fixtures (args: extra arguments for gen-keys.py, e.g. "names"). */
static inline void keyfix_generate(const char *prefix, const char *args)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const char *slash = strrchr(__FILE__, '/');
	char *cmd;

	snprintf(keyfix_dir, sizeof(keyfix_dir), "%s/%s-XXXXXX", base, prefix);
	if (mkdtemp(keyfix_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	cmd = xasprintf("/usr/bin/python3 '%.*sgen-keys.py' '%s' %s",
			slash ? (int)(slash - __FILE__ + 1) : 0, __FILE__, keyfix_dir, args);
	if (system(cmd) != 0) {
		fprintf(stderr, "key generation failed: %s\n", cmd);
		exit(1);
	}
	free(cmd);
}

static inline void keyfix_cleanup(void)
{
	char *cmd = xasprintf("rm -rf '%s'", keyfix_dir);

	CHECK(system(cmd) == 0);
	free(cmd);
}

/* A generated file by name, NUL-terminated; exits when it is missing (generation failed). */
static inline uint8_t *keyfix_read(const char *name, size_t *len)
{
	char *path = xasprintf("%s/%s", keyfix_dir, name);
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL) {
		fprintf(stderr, "missing fixture %s\n", path);
		exit(1);
	}
	free(path);
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			buf = xrealloc(buf, cap + 1);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* The fingerprint gen-keys.py recorded for a key name ("" when none; caller frees). */
static inline char *keyfix_fpr(const char *name)
{
	char *text = (char *)keyfix_read("fingerprints.txt", NULL), *line, *save = NULL, *out = NULL;
	size_t nl = strlen(name);

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (out == NULL && strncmp(line, name, nl) == 0 && line[nl] == ' ')
			out = xstrdup(line + nl + 1);
	free(text);
	return out ? out : xstrdup("");
}

#endif
