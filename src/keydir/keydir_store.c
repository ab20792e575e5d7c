/*
 * keydir_store.c - the key directory's tables (schema migration 2); see keydir.h.
 *
 * Rows are only inserted and deleted, never updated: the triggers on keydir_keys mark the
 * affected names in keydir_pending, and a replaced key is a delete plus an insert.
 */
#include "keydir.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

bool keydir_store_insert(struct db *db, int64_t account_id, const struct keydir_key *k,
			 const uint8_t *original, size_t original_len)
{
	struct db_stmt *st = db_prepare(db,
		"INSERT INTO keydir_keys(account_id, addr, kind, fingerprint, algorithm, bits,"
		" created, expires, published, data, original, rrtype, owner, owner_lc,"
		" wkd_domain, wkd_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
	int rc;

	db_bind_int(st, 1, account_id);
	db_bind_text(st, 2, k->address);
	db_bind_text(st, 3, keys_kind_name(k->kind));
	db_bind_text(st, 4, k->fingerprint);
	db_bind_text(st, 5, k->algorithm);
	db_bind_int(st, 6, k->bits);
	db_bind_int(st, 7, k->created);
	db_bind_int(st, 8, k->expires);
	db_bind_int(st, 9, k->published);
	db_bind_blob(st, 10, k->data, k->len);
	if (original)
		db_bind_blob(st, 11, original, original_len);
	else
		db_bind_null(st, 11);
	db_bind_int(st, 12, k->rrtype);
	db_bind_text(st, 13, k->owner);
	db_bind_text(st, 14, k->owner_lc ? k->owner_lc : "");
	db_bind_text(st, 15, k->wkd_domain ? k->wkd_domain : "");
	db_bind_text(st, 16, k->wkd_hash ? k->wkd_hash : "");
	rc = db_step_done(db, st);
	db_finalize(st);
	return rc == DB_DONE;
}

void keydir_store_delete_copy(struct db *db, const char *addr, const char *kind,
			      const char *fingerprint)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM keydir_keys WHERE addr = ? AND kind = ?"
					  " AND fingerprint = ?");

	db_bind_text(st, 1, addr);
	db_bind_text(st, 2, kind);
	db_bind_text(st, 3, fingerprint);
	db_step_done(db, st);
	db_finalize(st);
}

static uint8_t *store_blob(struct db_stmt *st, int col, size_t *len)
{
	const void *p = db_col_blob(st, col, len);

	return xmemdup(p ? p : "", *len ? *len : 1);
}

/* One row of the list query into a struct. */
static struct keydir_key *store_row(struct db_stmt *st)
{
	struct keydir_key *k = xcalloc(1, sizeof(*k));
	const char *err;

	k->id = db_col_int(st, 0);
	k->address = xstrdup(db_col_text(st, 1));
	k->kind = strcmp(db_col_text(st, 2), "smime") == 0 ? KEYS_SMIME : KEYS_OPENPGP;
	k->fingerprint = xstrdup(db_col_text(st, 3));
	k->algorithm = xstrdup(db_col_text(st, 4));
	k->bits = (unsigned)db_col_int(st, 5);
	k->created = db_col_int(st, 6);
	k->expires = db_col_int(st, 7);
	k->published = db_col_int(st, 8);
	k->data = store_blob(st, 9, &k->len);
	k->rrtype = (uint16_t)(int)db_col_int(st, 10);
	k->owner = xstrdup(db_col_text(st, 11));
	k->owner_lc = xstrdup(db_col_text(st, 12));
	k->wkd_domain = xstrdup(db_col_text(st, 13));
	k->wkd_hash = xstrdup(db_col_text(st, 14));
	k->pending = (int)db_col_int(st, 15) != 0;
	err = db_col_text_or_null(st, 16);
	k->error = err ? xstrdup(err) : NULL;
	return k;
}

struct keydir_key **keydir_store_list(struct db *db, const char *addr, size_t *n)
{
	/* A copy is pending while any of its names is; show the newest error among them.
	 * "k.addr = ?1" comes before "?1 IS NULL": PostgreSQL gives ?1 the type of what it is
	 * first compared with (citext, case-insensitive); alone, IS NULL gives it none. */
	struct db_stmt *st = db_prepare(db,
		"SELECT k.id, k.addr, k.kind, k.fingerprint, k.algorithm, k.bits, k.created,"
		" k.expires, k.published, k.data, k.rrtype, k.owner, k.owner_lc, k.wkd_domain,"
		" k.wkd_hash,"
		" EXISTS (SELECT 1 FROM keydir_pending p WHERE (p.owner = k.owner AND"
		"   p.rrtype = k.rrtype) OR (p.owner = k.owner_lc AND p.rrtype = k.rrtype) OR"
		"   (p.rrtype = 0 AND p.owner = k.wkd_domain || '/' || k.wkd_hash)),"
		" (SELECT p.error FROM keydir_pending p WHERE p.error IS NOT NULL AND"
		"   ((p.owner = k.owner AND p.rrtype = k.rrtype) OR (p.owner = k.owner_lc AND"
		"   p.rrtype = k.rrtype)) LIMIT 1)"
		" FROM keydir_keys k WHERE k.addr = ?1 OR ?1 IS NULL ORDER BY k.addr, k.id");
	struct keydir_key **list = NULL;
	size_t cap = 0;

	*n = 0;
	db_bind_text(st, 1, addr);
	while (db_step_row(db, st)) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			list = xreallocarray(list, cap, sizeof(*list));
		}
		list[(*n)++] = store_row(st);
	}
	db_finalize(st);
	return list;
}

void keydir_key_free(struct keydir_key *k)
{
	if (k == NULL)
		return;
	free(k->address);
	free(k->fingerprint);
	free(k->algorithm);
	free(k->data);
	free(k->owner);
	free(k->owner_lc);
	free(k->wkd_domain);
	free(k->wkd_hash);
	free(k->error);
	free(k);
}

void keydir_key_list_free(struct keydir_key **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		keydir_key_free(list[i]);
	free(list);
}

/*
 * Pending names after the cursor (after_owner, after_type): DNS names first, then WKD files
 * (rrtype 0), so that a large batch reaches DNS before the slower file writes begin.
 */
struct keydir_pending *keydir_store_pending(struct db *db, bool all, int64_t now,
					    const char *after_owner, int after_type, size_t max,
					    size_t *n)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT owner, rrtype, gen FROM keydir_pending"
		" WHERE (rrtype = 0, owner, rrtype) > (?2 = 0, ?1, ?2) AND (?3 OR next_attempt <= ?4)"
		" ORDER BY rrtype = 0, owner, rrtype LIMIT ?5");
	struct keydir_pending *p = xcalloc(max ? max : 1, sizeof(*p));

	*n = 0;
	db_bind_text(st, 1, after_owner);
	db_bind_int(st, 2, after_type);
	db_bind_int(st, 3, all);
	db_bind_int(st, 4, now);
	db_bind_int(st, 5, (int64_t)max);
	while (db_step_row(db, st) && *n < max) {
		p[*n].owner = xstrdup(db_col_text(st, 0));
		p[*n].rrtype = (uint16_t)(int)db_col_int(st, 1);
		p[*n].gen = db_col_int(st, 2);
		(*n)++;
	}
	db_finalize(st);
	return p;
}

void keydir_pending_free(struct keydir_pending *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].owner);
	free(p);
}

void keydir_store_pending_done(struct db *db, const struct keydir_pending *p)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM keydir_pending WHERE owner = ? AND"
					  " rrtype = ? AND gen = ?");

	db_bind_text(st, 1, p->owner);
	db_bind_int(st, 2, p->rrtype);
	db_bind_int(st, 3, p->gen);
	db_step_done(db, st);
	db_finalize(st);
}

void keydir_store_pending_failed(struct db *db, const struct keydir_pending *p, const char *error,
				 int64_t next_attempt)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE keydir_pending SET attempts = attempts + 1, next_attempt = ?, error = ?"
		" WHERE owner = ? AND rrtype = ? AND gen = ?");

	db_bind_int(st, 1, next_attempt);
	db_bind_text(st, 2, error);
	db_bind_text(st, 3, p->owner);
	db_bind_int(st, 4, p->rrtype);
	db_bind_int(st, 5, p->gen);
	db_step_done(db, st);
	db_finalize(st);
}

void keydir_store_mark(struct db *db, const char *owner, uint16_t rrtype)
{
	/* A new mark replaces the old one whole (a new gen, no attempts, no error), as the
	 * triggers do. PostgreSQL's gen comes from the sequence its trigger uses too: its
	 * random() is a fraction, not SQLite's 64-bit number. */
	struct db_stmt *st = db_prepare(db, DB_SQL(db,
		"INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen) VALUES (?, ?, random())",
		"INSERT INTO keydir_pending(owner, rrtype, gen) VALUES (?, ?, nextval('keydir_gen'))"
		" ON CONFLICT (owner, rrtype) DO UPDATE SET gen = EXCLUDED.gen, attempts = 0,"
		" next_attempt = 0, error = NULL"));

	db_bind_text(st, 1, owner);
	db_bind_int(st, 2, rrtype);
	db_step_done(db, st);
	db_finalize(st);
}

/* S/MIME records carry "3 0 0" (DANE-EE, full certificate, no hash) before the DER. */
static void store_add_rdata(struct keydir_rdata **rd, size_t *n, size_t *cap, uint16_t rrtype,
			    const void *data, size_t len)
{
	size_t pre = rrtype == KEYDIR_RR_SMIMEA ? 3 : 0;
	uint8_t *p = xmalloc(len + pre + 1);

	if (pre) {
		p[0] = 3;
		p[1] = 0;
		p[2] = 0;
	}
	memcpy(p + pre, data, len);
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		*rd = xreallocarray(*rd, *cap, sizeof(**rd));
	}
	(*rd)[*n].data = p;
	(*rd)[*n].len = len + pre;
	(*n)++;
}

struct keydir_rdata *keydir_store_rdata(struct db *db, const char *owner, uint16_t rrtype,
					size_t *n)
{
	struct db_stmt *st = db_prepare(db, "SELECT data FROM keydir_keys WHERE rrtype = ?1 AND"
					  " (owner = ?2 OR owner_lc = ?2) ORDER BY id");
	struct keydir_rdata *rd = NULL;
	size_t cap = 0;

	*n = 0;
	db_bind_int(st, 1, rrtype);
	db_bind_text(st, 2, owner);
	while (db_step_row(db, st)) {
		size_t len;
		const void *p = db_col_blob(st, 0, &len);

		/* Two copies of one key at one name (two spellings of a local-part): once. */
		bool dup = false;
		for (size_t i = 0; i < *n && !dup; i++) {
			size_t pre = rrtype == KEYDIR_RR_SMIMEA ? 3 : 0;
			dup = rd[i].len == len + pre && memcmp(rd[i].data + pre, p, len) == 0;
		}
		if (!dup)
			store_add_rdata(&rd, n, &cap, rrtype, p ? p : "", len);
	}
	db_finalize(st);
	return rd;
}

uint8_t *keydir_store_wkd(struct db *db, const char *domain, const char *hash, size_t *len)
{
	struct db_stmt *st = db_prepare(db, "SELECT data FROM keydir_keys WHERE wkd_domain = ? AND"
					  " wkd_hash = ? ORDER BY id");
	uint8_t *out = NULL;

	*len = 0;
	db_bind_text(st, 1, domain);
	db_bind_text(st, 2, hash);
	while (db_step_row(db, st)) {
		size_t n;
		const void *p = db_col_blob(st, 0, &n);

		out = xrealloc(out, *len + n + 1);
		if (n > 0)
			memcpy(out + *len, p, n);
		*len += n;
	}
	db_finalize(st);
	return out;
}

void keydir_rdata_free(struct keydir_rdata *rd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rd[i].data);
	free(rd);
}
