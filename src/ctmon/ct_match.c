/*
 * ct_match.c - the watch list: a hash table of watched names, and a single backward pass
 * over each certificate name that looks up every suffix at a label boundary.
 *
 * This runs for every name of every entry, so it allocates nothing: the name is folded to
 * lower case into a stack buffer from its end, and the hash of each suffix falls out of
 * the same pass (the hash is computed right to left), so deciding "no match" costs one
 * pass over the name and one table probe per label.
 */
#include "ctmon/ct_match.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define NAME_MAX_LEN  253
#define LABEL_MAX_LEN 63

/* What a table entry says about its name. */
#define W_EXACT   0x1	/* watched exactly */
#define W_SUBTREE 0x2	/* watched with everything below */
#define W_PARENT  0x4	/* some watched name is one label below: a wildcard here covers it */

struct watch_slot {
	uint64_t hash;
	char *name;		/* NULL: empty slot */
	size_t len;
	unsigned flags;
};

struct ct_watch {
	struct watch_slot *slots;
	size_t cap;		/* a power of two */
	size_t used;
};

static const uint64_t fnv_basis = 14695981039346656037ULL;
static const uint64_t fnv_prime = 1099511628211ULL;

static uint64_t hash_step(uint64_t h, uint8_t c)
{
	return (h ^ c) * fnv_prime;
}

/* The hash of a lower-case name, taken from its last byte to its first. */
static uint64_t hash_name(const char *s, size_t len)
{
	uint64_t h = fnv_basis;

	while (len > 0)
		h = hash_step(h, (uint8_t)s[--len]);
	return h;
}

struct ct_watch *ct_watch_new(void)
{
	struct ct_watch *w = xcalloc(1, sizeof(*w));

	w->cap = 16;
	w->slots = xcalloc(w->cap, sizeof(*w->slots));
	return w;
}

void ct_watch_free(struct ct_watch *w)
{
	if (w == NULL)
		return;
	for (size_t i = 0; i < w->cap; i++)
		free(w->slots[i].name);
	free(w->slots);
	free(w);
}

static const struct watch_slot *watch_find(const struct ct_watch *w, uint64_t h,
					   const char *s, size_t len)
{
	for (size_t i = h & (w->cap - 1);; i = (i + 1) & (w->cap - 1)) {
		const struct watch_slot *sl = &w->slots[i];

		if (sl->name == NULL)
			return NULL;
		if (sl->hash == h && sl->len == len && memcmp(sl->name, s, len) == 0)
			return sl;
	}
}

static void watch_grow(struct ct_watch *w);

static void watch_set(struct ct_watch *w, const char *s, size_t len, unsigned flags)
{
	uint64_t h = hash_name(s, len);
	size_t i;

	if ((w->used + 1) * 2 > w->cap)
		watch_grow(w);
	for (i = h & (w->cap - 1); w->slots[i].name; i = (i + 1) & (w->cap - 1)) {
		struct watch_slot *sl = &w->slots[i];

		if (sl->hash == h && sl->len == len && memcmp(sl->name, s, len) == 0) {
			sl->flags |= flags;
			return;
		}
	}
	w->slots[i].hash = h;
	w->slots[i].name = xmemdup(s, len);
	w->slots[i].len = len;
	w->slots[i].flags = flags;
	w->used++;
}

static void watch_grow(struct ct_watch *w)
{
	struct watch_slot *old = w->slots;
	size_t oldcap = w->cap;

	w->cap *= 2;
	w->slots = xcalloc(w->cap, sizeof(*w->slots));
	for (size_t i = 0; i < oldcap; i++) {
		size_t j;

		if (old[i].name == NULL)
			continue;
		for (j = old[i].hash & (w->cap - 1); w->slots[j].name; j = (j + 1) & (w->cap - 1))
			;
		w->slots[j] = old[i];
	}
	free(old);
}

static bool host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static uint8_t fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c | 0x20) : c;
}

/*
 * Fold s into out (lower case, trailing dot dropped) and check it is a host name: labels of
 * 1 to 63 allowed characters, 253 bytes at most. Returns its length, or 0 when invalid.
 */
static size_t normalise(const char *s, size_t len, char *out)
{
	size_t label = 0;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = fold((uint8_t)s[i]);

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (!host_char(c) || ++label > LABEL_MAX_LEN) {
			return 0;
		}
		out[i] = (char)c;
	}
	return label ? len : 0;
}

int ct_watch_add(struct ct_watch *w, const char *name, const char **err)
{
	char buf[NAME_MAX_LEN + 1];
	bool subtree = name[0] == '.';
	const char *s = subtree ? name + 1 : name;
	size_t len = normalise(s, strlen(s), buf);
	const char *dot;

	if (len == 0) {
		*err = "a watched name must be a domain name in A-labels, optionally after a dot";
		return -1;
	}
	watch_set(w, buf, len, subtree ? W_SUBTREE : W_EXACT);
	/* The parent lets a wildcard certificate name one label above find this name. */
	dot = memchr(buf, '.', len);
	if (dot)
		watch_set(w, dot + 1, len - (size_t)(dot + 1 - buf), W_PARENT);
	return 0;
}

/*
 * One backward pass over the folded name in buf[start..len): at each label boundary, the
 * proper suffix is looked up for a subtree watch; the whole is looked up with want.
 * Validation happens in the same pass, so a match is only returned for a valid name.
 */
static bool match_suffixes(const struct ct_watch *w, const char *s, char *buf, size_t start,
			   size_t len, unsigned want)
{
	uint64_t h = fnv_basis;
	size_t label = 0;
	bool hit = false;

	for (size_t i = len; i-- > start;) {
		uint8_t c = fold((uint8_t)s[i]);

		if (c == '.') {
			if (label == 0)
				return false;
			if (!hit) {
				const struct watch_slot *sl = watch_find(w, h, buf + i + 1,
									 len - i - 1);

				hit = sl && (sl->flags & W_SUBTREE);
			}
			label = 0;
		} else if (!host_char(c) || ++label > LABEL_MAX_LEN) {
			return false;
		}
		buf[i] = (char)c;
		h = hash_step(h, c);
	}
	if (label == 0)
		return false;
	if (!hit) {
		const struct watch_slot *sl = watch_find(w, h, buf + start, len - start);

		hit = sl && (sl->flags & want);
	}
	return hit;
}

bool ct_watch_match(const struct ct_watch *w, const char *name, size_t len)
{
	char buf[NAME_MAX_LEN + 1];
	bool wild;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN)
		return false;
	/*
	 * "*.B" covers the names one label below B: it matches a subtree watch of B or above,
	 * and any watch one label below B (marked W_PARENT on B).
	 */
	wild = len > 2 && name[0] == '*' && name[1] == '.';
	return match_suffixes(w, name, buf, wild ? 2 : 0, len,
			      wild ? (W_SUBTREE | W_PARENT) : (W_EXACT | W_SUBTREE));
}

int ct_watch_match_cert(const struct ct_watch *w, const struct ct_cert *c)
{
	for (size_t i = 0; i < c->n_names; i++) {
		const struct ct_name *nm = &c->names[i];

		if (nm->kind == CT_NAME_IP)
			continue;
		if (ct_watch_match(w, (const char *)nm->p, nm->len))
			return (int)i;
	}
	return -1;
}
