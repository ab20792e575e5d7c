/*
 * conf.h - INI configuration reader driven by tables of typed keys.
 *
 * Each module declares its keys in a table {name, type, default, offset, ...} pointing into
 * its own config struct; conf_load fills every struct, applying defaults first. An unknown
 * section or key, a duplicate key or a bad value stops loading with "FILE:LINE: sentence".
 */
#ifndef PW_CONF_H
#define PW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

#define CONF_MAX_FILE	(1024 * 1024)
#define CONF_MAX_LINE	4096

enum conf_type {
	CONF_STRING,	/* char * (owned; "" when unset) */
	CONF_BOOL,	/* bool */
	CONF_UINT,	/* uint64_t within [min, max] */
	CONF_DURATION,	/* int64_t seconds within [min, max] */
	CONF_SIZE,	/* uint64_t bytes within [min, max] */
	CONF_HOSTPORT,	/* struct conf_hostport */
	CONF_CIDRS,	/* struct conf_cidrs */
	CONF_ENUM,	/* char * (owned), one of choices */
};

struct conf_hostport {
	char *host;
	uint16_t port;
};

struct conf_cidrs {
	struct cidr *v;
	size_t n;
};

struct conf_key {
	const char *name;
	enum conf_type type;
	const char *def;		/* default, in config-file syntax */
	size_t offset;			/* offsetof(struct x_conf, field) */
	uint64_t min, max;		/* UINT, DURATION, SIZE; max 0 = no limit */
	const char *const *choices;	/* ENUM: NULL-terminated */
	const char *doc;		/* one sentence for --help and the man page */
};

struct conf_section {
	const char *name;
	const struct conf_key *keys;	/* terminated by a key with name NULL */
	void *base;			/* the struct the offsets point into */
};

/*
 * Apply defaults, then read path. Returns 0, or -1 with *err (caller frees) set to
 * "FILE:LINE: what is wrong". A missing file is an error.
 */
int conf_load(const char *path, const struct conf_section *sections, size_t nsections, char **err);
/* The same for text already in memory; name is used in messages. */
int conf_parse(const char *text, size_t len, const char *name, const struct conf_section *sections,
	       size_t nsections, char **err);
/* Set every key to its default. Returns -1 with *err when a default is invalid (a bug). */
int conf_defaults(const struct conf_section *sections, size_t nsections, char **err);
/* Free what conf_* allocated inside the structs. */
void conf_release(const struct conf_section *sections, size_t nsections);

#endif
