/*
 * conf.c - table-driven INI reader; see conf.h.
 *
 * Syntax: "[section]" lines, "key = value" lines, "#" or ";" comments at line start,
 * blank lines. Values are taken verbatim after trimming; no quoting, no continuation.
 */
#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

/* Parse value for key into its field; on error return a sentence (static or allocated into *msg). */
static bool conf_set(const struct conf_key *key, void *base, const char *value, char **msg)
{
	char *field = (char *)base + key->offset;
	uint64_t u;
	int64_t d;

	switch (key->type) {
	case CONF_STRING:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return true;
	case CONF_BOOL:
		if (parse_bool(value, (bool *)field))
			return true;
		*msg = xasprintf("\"%s\" is not a boolean: use on or off", value);
		return false;
	case CONF_UINT:
	case CONF_SIZE:
		if ((key->type == CONF_UINT ? parse_uint(value, 0, UINT64_MAX, &u) :
					      parse_size(value, &u)) &&
		    u >= key->min && (key->max == 0 || u <= key->max)) {
			*(uint64_t *)field = u;
			return true;
		}
		*msg = xasprintf("\"%s\" is not a %s between %llu and %llu", value,
				 key->type == CONF_UINT ? "number" : "size (like 10M)",
				 (unsigned long long)key->min,
				 (unsigned long long)(key->max ? key->max : UINT64_MAX));
		return false;
	case CONF_DURATION:
		if (parse_duration(value, &d) && (uint64_t)d >= key->min &&
		    (key->max == 0 || (uint64_t)d <= key->max)) {
			*(int64_t *)field = d;
			return true;
		}
		*msg = xasprintf("\"%s\" is not a duration (like 30s, 10m, 2h, 5d) in the allowed range",
				 value);
		return false;
	case CONF_HOSTPORT: {
		struct conf_hostport *hp = (struct conf_hostport *)field;
		char *host;
		uint16_t port;
		if (*value == '\0') {	/* unset: an optional address */
			free(hp->host);
			hp->host = NULL;
			hp->port = 0;
			return true;
		}
		if (!hostport_parse(value, &host, &port)) {
			*msg = xasprintf("\"%s\" is not an address:port (like 127.0.0.1:10025 or [::1]:25)",
					 value);
			return false;
		}
		free(hp->host);
		hp->host = host;
		hp->port = port;
		return true;
	}
	case CONF_CIDRS: {
		struct conf_cidrs *cl = (struct conf_cidrs *)field;
		struct cidr *v;
		char *bad = NULL;
		int n = cidr_list_parse(value, &v, &bad);
		if (n < 0) {
			*msg = xasprintf("\"%s\" is not a network in CIDR notation (like 127.0.0.0/8)", bad);
			free(bad);
			return false;
		}
		free(cl->v);
		cl->v = v;
		cl->n = (size_t)n;
		return true;
	}
	case CONF_ENUM:
		for (const char *const *c = key->choices; *c; c++) {
			if (strcmp(*c, value) == 0) {
				free(*(char **)field);
				*(char **)field = xstrdup(value);
				return true;
			}
		}
		*msg = xasprintf("\"%s\" is not one of the allowed values", value);
		return false;
	}
	fatalx("conf: unknown key type %d", key->type);
}

int conf_defaults(const struct conf_section *sections, size_t nsections, char **err)
{
	for (size_t s = 0; s < nsections; s++) {
		for (const struct conf_key *k = sections[s].keys; k->name; k++) {
			char *msg = NULL;
			if (!conf_set(k, sections[s].base, k->def ? k->def : "", &msg)) {
				*err = xasprintf("default of [%s] %s: %s", sections[s].name, k->name, msg);
				free(msg);
				return -1;
			}
		}
	}
	return 0;
}

static const struct conf_section *conf_find_section(const struct conf_section *sections, size_t n,
						    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	return NULL;
}

static const struct conf_key *conf_find_key(const struct conf_section *sec, const char *name)
{
	for (const struct conf_key *k = sec->keys; k->name; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* Keys seen so far in a parse, to refuse duplicates (a typo'd override is a classic trap). */
struct conf_seen {
	const struct conf_key **keys;
	size_t n;
};

static bool conf_seen_add(struct conf_seen *seen, const struct conf_key *k)
{
	for (size_t i = 0; i < seen->n; i++)
		if (seen->keys[i] == k)
			return false;
	seen->keys = xreallocarray(seen->keys, seen->n + 1, sizeof(*seen->keys));
	seen->keys[seen->n++] = k;
	return true;
}

/* Parse one line; returns NULL or an error sentence (caller frees). */
static char *conf_line(char *line, const struct conf_section *sections, size_t nsections,
		       const struct conf_section **cur, struct conf_seen *seen)
{
	char *p = str_trim(line), *eq, *key, *value, *msg = NULL;
	const struct conf_key *k;

	if (*p == '\0' || *p == '#' || *p == ';')
		return NULL;
	if (*p == '[') {
		char *end = strchr(p, ']');
		if (end == NULL || end[1] != '\0')
			return xstrdup("a section header must look like [name]");
		*end = '\0';
		*cur = conf_find_section(sections, nsections, str_trim(p + 1));
		if (*cur == NULL)
			return xasprintf("unknown section [%s]", str_trim(p + 1));
		return NULL;
	}
	eq = strchr(p, '=');
	if (eq == NULL)
		return xstrdup("expected \"key = value\" or \"[section]\"");
	*eq = '\0';
	key = str_trim(p);
	value = str_trim(eq + 1);
	if (*cur == NULL)
		return xasprintf("key \"%s\" appears before any [section]", key);
	k = conf_find_key(*cur, key);
	if (k == NULL)
		return xasprintf("unknown key \"%s\" in section [%s]", key, (*cur)->name);
	if (!conf_seen_add(seen, k))
		return xasprintf("key \"%s\" in section [%s] is set twice", key, (*cur)->name);
	if (!conf_set(k, (*cur)->base, value, &msg)) {
		char *full = xasprintf("[%s] %s: %s", (*cur)->name, key, msg);
		free(msg);
		return full;
	}
	return NULL;
}

int conf_parse(const char *text, size_t len, const char *name, const struct conf_section *sections,
	       size_t nsections, char **err)
{
	const struct conf_section *cur = NULL;
	struct conf_seen seen = { NULL, 0 };
	size_t lineno = 0, off = 0;
	int rc = 0;

	if (conf_defaults(sections, nsections, err) < 0)
		return -1;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t llen = nl ? (size_t)(nl - (text + off)) : len - off;
		char *msg = NULL;

		lineno++;
		if (llen > CONF_MAX_LINE) {
			msg = xasprintf("line longer than %d bytes", CONF_MAX_LINE);
		} else if (memchr(text + off, '\0', llen) != NULL) {
			msg = xstrdup("the line contains a NUL byte");
		} else {
			char *line = xstrndup(text + off, llen);
			msg = conf_line(line, sections, nsections, &cur, &seen);
			free(line);
		}
		if (msg) {
			*err = xasprintf("%s:%zu: %s", name, lineno, msg);
			free(msg);
			rc = -1;
			break;
		}
		off += llen + 1;
	}
	free(seen.keys);
	return rc;
}

int conf_load(const char *path, const struct conf_section *sections, size_t nsections, char **err)
{
	struct stat st;
	char *text;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = xasprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > CONF_MAX_FILE) {
		*err = xasprintf("%s: not a regular file of at most %d bytes", path, CONF_MAX_FILE);
		close(fd);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	n = read(fd, text, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		*err = xasprintf("%s: read failed", path);
		free(text);
		return -1;
	}
	rc = conf_parse(text, (size_t)n, path, sections, nsections, err);
	free(text);
	return rc;
}

void conf_release(const struct conf_section *sections, size_t nsections)
{
	for (size_t s = 0; s < nsections; s++) {
		for (const struct conf_key *k = sections[s].keys; k->name; k++) {
			char *field = (char *)sections[s].base + k->offset;
			switch (k->type) {
			case CONF_STRING:
			case CONF_ENUM:
				free(*(char **)field);
				*(char **)field = NULL;
				break;
			case CONF_HOSTPORT:
				free(((struct conf_hostport *)field)->host);
				((struct conf_hostport *)field)->host = NULL;
				break;
			case CONF_CIDRS:
				free(((struct conf_cidrs *)field)->v);
				((struct conf_cidrs *)field)->v = NULL;
				break;
			default:
				break;
			}
		}
	}
}
