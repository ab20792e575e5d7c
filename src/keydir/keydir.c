/*
 * keydir.c - the key directory's operations: publish, unpublish, expire, reconcile and
 * sync; see keydir.h for the model (the store is the truth, pending names are reconciled).
 *
 * Reconcilers (the command line and serve's worker) take an exclusive lock on
 * state_dir/keydir.lock, so their updates reach the DNS server in the order they read the
 * store; a name changed while it is being reconciled keeps its mark (another gen) and is
 * done again.
 */
#include "keydir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

#define RECONCILE_BATCH 256

char *keydir_zone_file(const struct pw_config *cfg)
{
	if (cfg->keydir.zone_file && *cfg->keydir.zone_file)
		return xstrdup(cfg->keydir.zone_file);
	return config_state_path(cfg, "keydir.zone");
}

char *keydir_wkd_dir(const struct pw_config *cfg)
{
	if (cfg->keydir.wkd_dir && *cfg->keydir.wkd_dir)
		return xstrdup(cfg->keydir.wkd_dir);
	return config_state_path(cfg, "wkd");
}

static bool keydir_dns_mode(const struct pw_config *cfg)
{
	return cfg->keydir.dns_server.host && *cfg->keydir.dns_server.host;
}

const char *keydir_rrtype_name(uint16_t rrtype)
{
	switch (rrtype) {
	case KEYDIR_RR_OPENPGPKEY:
		return "OPENPGPKEY";
	case KEYDIR_RR_SMIMEA:
		return "SMIMEA";
	case KEYDIR_WKD:
		return "WKD";
	default:
		return "?";
	}
}

/* Does name lie at or below zone (both lower-case, no trailing dot)? */
static bool keydir_in_zone(const char *name, const char *zone)
{
	size_t n = strlen(name), z = strlen(zone);

	return n == z ? strcmp(name, zone) == 0
		      : n > z && name[n - z - 1] == '.' && strcmp(name + n - z, zone) == 0;
}

char *keydir_zone_of(const struct pw_config *cfg, const char *domain)
{
	char *d = str_lower(xstrdup(domain)), *list, *tok, *save = NULL, *best = NULL;

	if (!cfg->keydir.zones || !*cfg->keydir.zones)
		return d;
	list = xstrdup(cfg->keydir.zones);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t len;

		tok = str_lower(str_trim(tok));
		len = strlen(tok);
		if (len > 1 && tok[len - 1] == '.')
			tok[--len] = '\0';
		if (len && keydir_in_zone(d, tok) && (!best || len > strlen(best))) {
			free(best);
			best = xstrdup(tok);
		}
	}
	free(list);
	free(d);
	return best;
}

const char *keydir_owner_domain(const char *owner)
{
	const char *p = strchr(owner, '.');

	if (p == NULL || (p = strchr(p + 1, '.')) == NULL || p[1] == '\0')
		return NULL;
	return p + 1;
}

void keydir_report_add(struct keydir_report *rep, const char *action, const char *where,
		       const char *name, const char *type)
{
	struct keydir_change *c;

	rep->changes = xreallocarray(rep->changes, rep->nchanges + 1, sizeof(*rep->changes));
	c = &rep->changes[rep->nchanges++];
	c->action = xstrdup(action);
	c->where = xstrdup(where);
	c->name = xstrdup(name);
	c->type = xstrdup(type);
}

void keydir_report_free(struct keydir_report *rep)
{
	for (size_t i = 0; i < rep->nchanges; i++) {
		free(rep->changes[i].action);
		free(rep->changes[i].where);
		free(rep->changes[i].name);
		free(rep->changes[i].type);
	}
	free(rep->changes);
	free(rep->error);
	memset(rep, 0, sizeof(*rep));
}

static void keydir_report_error(struct keydir_report *rep, const char *err)
{
	if (rep->error == NULL)
		rep->error = xstrdup(err);
}

/* ---- publishing ------------------------------------------------------------------------ */

/* An owner name from keys_dane_name, lower-cased (DNS names compare without case). */
static char *keydir_owner(const char *address, const char *label)
{
	char *o = keys_dane_name(address, label);

	return o ? str_lower(o) : NULL;
}

/* The row for one copy; NULL + *msg when it cannot be published. */
static struct keydir_key *keydir_copy_row(struct keydir *kd, const struct keys_info *info,
					  const struct keys_copy *c, int64_t now, char **msg)
{
	const char *at = strrchr(c->address, '@');
	struct keydir_key *k;
	char *zone, *local, *lcaddr;
	bool pgp = info->kind == KEYS_OPENPGP;

	if (at == NULL || at == c->address || at[1] == '\0') {
		*msg = xasprintf("%s is not a mail address", c->address);
		return NULL;
	}
	if (keydir_dns_mode(kd->cfg)) {
		zone = keydir_zone_of(kd->cfg, at + 1);
		if (zone == NULL) {
			*msg = xasprintf("no zone in [keydir] zones holds %s: the key for %s "
					 "cannot be published in DNS", at + 1, c->address);
			return NULL;
		}
		free(zone);
	}
	k = xcalloc(1, sizeof(*k));
	k->address = xstrdup(c->address);
	k->kind = info->kind;
	k->fingerprint = xstrdup(info->fingerprint);
	k->algorithm = xstrdup(info->algorithm);
	k->bits = info->bits;
	k->created = info->created;
	k->expires = info->expires;
	k->published = now;
	k->data = xmemdup(c->data, c->len ? c->len : 1);
	k->len = c->len;
	k->rrtype = pgp ? KEYDIR_RR_OPENPGPKEY : KEYDIR_RR_SMIMEA;
	k->owner = keydir_owner(c->address, pgp ? "_openpgpkey" : "_smimecert");
	local = xstrndup(c->address, (size_t)(at - c->address));
	/* GnuPG lower-cases the local-part before hashing; RFC 7929 does not: publish both. */
	lcaddr = xasprintf("%s%s", str_lower(xstrdup(local)), at);
	k->owner_lc = pgp ? keydir_owner(lcaddr, "_openpgpkey") : xstrdup("");
	if (k->owner_lc && k->owner && strcmp(k->owner_lc, k->owner) == 0)
		k->owner_lc[0] = '\0';
	k->wkd_domain = pgp ? str_lower(xstrdup(at + 1)) : xstrdup("");
	k->wkd_hash = pgp ? keys_wkd_hash(local) : xstrdup("");
	free(local);
	free(lcaddr);
	if (k->owner == NULL || k->owner_lc == NULL || k->wkd_hash == NULL) {
		*msg = xasprintf("cannot derive the published names of %s", c->address);
		keydir_key_free(k);
		return NULL;
	}
	return k;
}

int keydir_check(const struct pw_config *cfg, const struct account *acct, const uint8_t *data,
		 size_t len, int64_t now, struct keys_info *info, char **msg)
{
	const struct keydir_conf *kc = &cfg->keydir;
	struct keys_policy pol = { .now = now, .expiry_margin = kc->expiry_margin,
				   .max_record_size = kc->max_record_size };
	size_t nallowed = acct->naliases + 1;
	char **allowed = xcalloc(nallowed, sizeof(char *));
	enum keys_error e;

	allowed[0] = acct->primary;
	for (size_t i = 0; i < acct->naliases; i++)
		allowed[i + 1] = acct->aliases[i];
	memset(info, 0, sizeof(*info));
	e = keys_accept(data, len, allowed, nallowed, &pol, info, msg);
	free(allowed);
	return e == KEYS_OK ? 0 : -1;
}

int keydir_publish(struct keydir *kd, const struct account *acct, const uint8_t *data,
		   size_t len, int64_t now, struct keys_info *info, char **msg)
{
	if (keydir_check(kd->cfg, acct, data, len, now, info, msg) < 0)
		return -1;
	return keydir_store_checked(kd, acct, data, len, now, info, msg);
}

int keydir_store_checked(struct keydir *kd, const struct account *acct, const uint8_t *data,
			 size_t len, int64_t now, struct keys_info *info, char **msg)
{
	const struct keydir_conf *kc = &kd->cfg->keydir;
	struct keydir_key **rows;
	size_t n = 0;
	int rc = -1;

	rows = xcalloc(info->ncopies + 1, sizeof(*rows));
	for (n = 0; n < info->ncopies; n++)
		if ((rows[n] = keydir_copy_row(kd, info, &info->copies[n], now, msg)) == NULL)
			goto out;
	if (n == 0) {
		*msg = xstrdup("the key carries none of the account's addresses");
		goto out;
	}
	if (db_begin(kd->db) != DB_OK) {
		*msg = xasprintf("the database could not be changed: %s", db_errmsg(kd->db));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		keydir_store_delete_copy(kd->db, rows[i]->address, keys_kind_name(rows[i]->kind),
					 rows[i]->fingerprint);
		if (!keydir_store_insert(kd->db, acct->id, rows[i], kc->keep_original ? data : NULL,
					 len)) {
			db_rollback(kd->db);
			*msg = db_error(kd->db) != DB_OK
				? xasprintf("cannot store the key for %s: %s", rows[i]->address,
					    db_errmsg(kd->db))
				: xasprintf("cannot store the key for %s", rows[i]->address);
			goto out;
		}
	}
	if (db_commit(kd->db) != DB_OK) {
		*msg = xasprintf("the database could not be changed: %s", db_errmsg(kd->db));
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		log_info("event=key_publish address=%s kind=%s fingerprint=%s owner=%s", rows[i]->address,
			 keys_kind_name(rows[i]->kind), rows[i]->fingerprint, rows[i]->owner);
	rc = 0;
out:
	for (size_t i = 0; i < info->ncopies; i++)
		keydir_key_free(rows[i]);
	free(rows);
	if (rc < 0)
		keys_info_free(info);
	return rc;
}

size_t keydir_unpublish(struct keydir *kd, const char *addr, const char *fingerprint)
{
	/* CAST: PostgreSQL needs a type for ?2 where it is first seen */
	struct db_stmt *st = db_prepare(kd->db,
		"DELETE FROM keydir_keys WHERE addr = ?1 AND (CAST(?2 AS TEXT) IS NULL OR"
		" lower(fingerprint) = lower(?2))");
	size_t n;

	db_bind_text(st, 1, addr);
	db_bind_text(st, 2, fingerprint);
	db_step_done(kd->db, st);
	db_finalize(st);
	n = (size_t)db_changes(kd->db);
	if (n)
		log_info("event=key_unpublish address=%s fingerprint=%s copies=%zu", addr,
			 fingerprint ? fingerprint : "all", n);
	return n;
}

size_t keydir_expire(struct keydir *kd, int64_t now)
{
	int64_t limit = now + kd->cfg->keydir.expiry_margin;
	struct db_stmt *st = db_prepare(kd->db, "SELECT addr, fingerprint, expires FROM keydir_keys"
					      " WHERE expires <> 0 AND expires <= ?");
	size_t n;

	db_bind_int(st, 1, limit);
	while (db_step_row(kd->db, st))
		log_info("event=key_expire address=%s fingerprint=%s expires=%lld",
			 db_col_text(st, 0), db_col_text(st, 1),
			 (long long)db_col_int(st, 2));
	db_finalize(st);
	st = db_prepare(kd->db, "DELETE FROM keydir_keys WHERE expires <> 0 AND expires <= ?");
	db_bind_int(st, 1, limit);
	db_step_done(kd->db, st);
	db_finalize(st);
	n = (size_t)db_changes(kd->db);
	return n;
}

/* ---- reconciling ------------------------------------------------------------------------ */

/* Exclusive lock of reconcilers; -1 when the lock file cannot be opened (then unlocked). */
static int keydir_lock(const struct pw_config *cfg)
{
	char *path = config_state_path(cfg, "keydir.lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		log_warn("event=keydir_lock path=%s error=\"%s\"", path, strerror(errno));
	else
		while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
			;
	free(path);
	return fd;
}

static void keydir_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* A name that failed: keep its mark and try again after retry_interval. */
static void keydir_fail(struct keydir *kd, const struct keydir_pending *p, const char *err,
			int64_t now, struct keydir_report *rep)
{
	keydir_store_pending_failed(kd->db, p, err, now + kd->cfg->keydir.retry_interval);
	keydir_report_error(rep, err);
	rep->failed++;
	log_warn("event=keydir_pending owner=%s type=%s error=\"%s\"", p->owner,
		 keydir_rrtype_name(p->rrtype), err);
	stats_keydir_error();
}

static void keydir_done(struct keydir *kd, const struct keydir_pending *p)
{
	keydir_store_pending_done(kd->db, p);
}

static void keydir_reconcile_wkd(struct keydir *kd, const struct keydir_pending *p, int64_t now,
				 struct keydir_report *rep)
{
	char *domain = xstrdup(p->owner), *hash = strchr(domain, '/'), *err = NULL;
	const char *action = NULL;

	if (hash)
		*hash++ = '\0';
	if (hash == NULL || keydir_file_wkd(kd, domain, hash, &action, &err) < 0) {
		keydir_fail(kd, p, err ? err : "bad WKD name", now, rep);
	} else {
		keydir_done(kd, p);
		rep->done++;
		if (action)
			keydir_report_add(rep, action, "wkd", p->owner, "WKD");
	}
	free(err);
	free(domain);
}

/* A DNS name being reconciled in this pass. */
struct dns_item {
	const struct keydir_pending *p;
	char *zone;
	struct keydir_rdata *rd;
	size_t nrd;
};

static int dns_item_cmp(const void *a, const void *b)
{
	const struct dns_item *x = a, *y = b;

	return strcmp(x->zone ? x->zone : "", y->zone ? y->zone : "");
}

/* Send items[0..n) of one zone in as few UPDATE messages as fit the size limit. */
static void keydir_reconcile_zone(struct keydir *kd, struct dns_item *items, size_t n, int64_t now,
				  struct keydir_report *rep)
{
	struct keydir_rrset *sets = xcalloc(n, sizeof(*sets));
	char *failure = NULL;
	size_t i = 0;

	for (size_t j = 0; j < n; j++)
		sets[j] = (struct keydir_rrset){ items[j].p->owner, items[j].p->rrtype, items[j].rd,
						 items[j].nrd };
	while (i < n) {
		size_t end = i, size = 0;
		char *err = NULL;

		while (end < n && (end == i || size + keydir_dns_rrset_size(&sets[end]) <=
							   KEYDIR_MAX_UPDATE))
			size += keydir_dns_rrset_size(&sets[end++]);
		/* After one failure the rest of the zone waits for the next pass. */
		if (failure == NULL &&
		    keydir_dns_update(&kd->cfg->keydir, items[i].zone, &sets[i], end - i, &err) < 0)
			failure = err;
		for (size_t j = i; j < end; j++) {
			if (failure) {
				keydir_fail(kd, items[j].p, failure, now, rep);
				continue;
			}
			keydir_done(kd, items[j].p);
			rep->done++;
			keydir_report_add(rep, items[j].nrd ? "publish" : "remove", "dns",
					  items[j].p->owner, keydir_rrtype_name(items[j].p->rrtype));
		}
		if (failure == NULL)
			log_info("event=keydir_update zone=%s names=%zu bytes=%zu", items[i].zone,
				 end - i, size);
		i = end;
	}
	free(failure);
	free(sets);
}

/* DNS names of one batch: read what they should hold, group by zone, send. */
static void keydir_reconcile_dns(struct keydir *kd, struct keydir_pending **ps, size_t n, int64_t now,
				 struct keydir_report *rep)
{
	struct dns_item *items = xcalloc(n + 1, sizeof(*items));
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		const char *domain = keydir_owner_domain(ps[i]->owner);
		char *zone = domain ? keydir_zone_of(kd->cfg, domain) : NULL;

		if (zone == NULL) {
			char *err = xasprintf("no zone in [keydir] zones holds %s", ps[i]->owner);
			keydir_fail(kd, ps[i], err, now, rep);
			free(err);
			continue;
		}
		items[m].p = ps[i];
		items[m].zone = zone;
		items[m].rd = keydir_store_rdata(kd->db, ps[i]->owner, ps[i]->rrtype, &items[m].nrd);
		m++;
	}
	qsort(items, m, sizeof(*items), dns_item_cmp);
	for (size_t i = 0; i < m;) {
		size_t j = i;
		while (j < m && strcmp(items[j].zone, items[i].zone) == 0)
			j++;
		keydir_reconcile_zone(kd, items + i, j - i, now, rep);
		i = j;
	}
	for (size_t i = 0; i < m; i++) {
		free(items[i].zone);
		keydir_rdata_free(items[i].rd, items[i].nrd);
	}
	free(items);
}

/* Zone file mode: one rewrite covers every pending DNS name read before it. */
static void keydir_reconcile_zone_file(struct keydir *kd, struct keydir_pending *ps, size_t n,
				       int64_t now, struct keydir_report *rep)
{
	char *err = NULL, *path;
	bool changed = false;

	if (keydir_file_zone(kd, &changed, &err) < 0) {
		for (size_t i = 0; i < n; i++)
			keydir_fail(kd, &ps[i], err, now, rep);
		free(err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		keydir_done(kd, &ps[i]);
		rep->done++;
	}
	if (changed) {
		path = keydir_zone_file(kd->cfg);
		keydir_report_add(rep, "write", "zone-file", path, "zone-file");
		log_info("event=keydir_zone_file path=%s names=%zu", path, n);
		free(path);
	}
}

int keydir_reconcile(struct keydir *kd, bool all, int64_t now, struct keydir_report *rep)
{
	int lock = keydir_lock(kd->cfg);
	bool dns = keydir_dns_mode(kd->cfg);
	char *after = xstrdup("");
	int after_type = -1;
	struct keydir_pending *zf = NULL;
	size_t nzf = 0;
	size_t failed0 = rep->failed;

	for (;;) {
		size_t n, ndns = 0;
		struct keydir_pending *p = keydir_store_pending(kd->db, all, now, after, after_type,
							       RECONCILE_BATCH, &n);
		struct keydir_pending **dnsp = xcalloc(n + 1, sizeof(*dnsp));

		if (n == 0 || (kd->may_act && !kd->may_act(kd->may_act_arg, KEYDIR_ACT_MS))) {
			/* a holder whose lease may run out stops before another node can start */
			if (n > 0) {
				rep->failed += n;
				keydir_report_error(rep, "the lease of the key directory is not held");
			}
			free(dnsp);
			keydir_pending_free(p, n);
			break;
		}
		free(after);
		after = xstrdup(p[n - 1].owner);
		after_type = p[n - 1].rrtype;
		for (size_t i = 0; i < n; i++) {
			if (p[i].rrtype == KEYDIR_WKD)
				keydir_reconcile_wkd(kd, &p[i], now, rep);
			else if (dns)
				dnsp[ndns++] = &p[i];
			else {
				zf = xreallocarray(zf, nzf + 1, sizeof(*zf));
				zf[nzf] = p[i];
				zf[nzf++].owner = xstrdup(p[i].owner);
			}
		}
		if (ndns)
			keydir_reconcile_dns(kd, dnsp, ndns, now, rep);
		free(dnsp);
		keydir_pending_free(p, n);
	}
	if (nzf)
		keydir_reconcile_zone_file(kd, zf, nzf, now, rep);
	keydir_pending_free(zf, nzf);
	free(after);
	keydir_unlock(lock);
	return rep->failed > failed0 ? -1 : 0;
}

/* ---- sync ------------------------------------------------------------------------------- */

struct sync_rec {
	char *owner;
	uint16_t type;
	uint8_t *rd;
	size_t len;
};

struct sync_set {
	struct sync_rec *v;
	size_t n;
	const char *zone;	/* records outside it are ignored */
};

static void sync_add(struct sync_set *s, const char *owner, uint16_t type, const uint8_t *rd,
		     size_t len)
{
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = (struct sync_rec){ xstrdup(owner), type, xmemdup(rd, len ? len : 1), len };
}

static void sync_set_free(struct sync_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].owner);
		free(s->v[i].rd);
	}
	free(s->v);
}

/*
 * Is owner one of our names in zone: "<hash>._openpgpkey.<domain>" for 61, "._smimecert." for
 * 53, with <domain> the zone itself or a name below it? Decided by the zone, not by the shape
 * of the domain, so a zone of one label ("kz") counts as much as one of several.
 */
static bool sync_ours(const char *owner, uint16_t type, const char *zone)
{
	const char *label = type == KEYDIR_RR_OPENPGPKEY ? "_openpgpkey" :
			    type == KEYDIR_RR_SMIMEA ? "_smimecert" : NULL;
	const char *dot = strchr(owner, '.');
	size_t n = label ? strlen(label) : 0;

	/* owner comes lower-case from the transfer (keydir_dns_rr_cb): no copy per record */
	if (!label || !dot || strncmp(dot + 1, label, n) != 0 || dot[1 + n] != '.')
		return false;
	return keydir_in_zone(dot + 2 + n, zone);
}

static void sync_axfr_cb(void *arg, const char *owner, uint16_t type, const uint8_t *rdata,
			 size_t len)
{
	struct sync_set *s = arg;

	if (sync_ours(owner, type, s->zone))
		sync_add(s, owner, type, rdata, len);
}

static int sync_rec_cmp(const void *a, const void *b)
{
	const struct sync_rec *x = a, *y = b;
	int c = strcmp(x->owner, y->owner);

	if (c == 0)
		c = (int)x->type - (int)y->type;
	if (c == 0 && x->len != y->len)
		c = x->len < y->len ? -1 : 1;
	if (c == 0 && x->len)
		c = memcmp(x->rd, y->rd, x->len);
	return c;
}

/* What the store wants published in zone. */
static void sync_wanted(struct keydir *kd, const char *zone, struct sync_set *s)
{
	size_t n;
	struct keydir_key **keys = keydir_store_list(kd->db, NULL, &n);

	for (size_t i = 0; i < n; i++) {
		const char *owners[2] = { keys[i]->owner, keys[i]->owner_lc };
		for (size_t j = 0; j < 2; j++) {
			const char *domain = keydir_owner_domain(owners[j]);
			char *z = domain ? keydir_zone_of(kd->cfg, domain) : NULL;
			size_t nrd;
			struct keydir_rdata *rd;

			if (z && strcmp(z, zone) == 0) {
				rd = keydir_store_rdata(kd->db, owners[j], keys[i]->rrtype, &nrd);
				for (size_t r = 0; r < nrd; r++)
					sync_add(s, owners[j], keys[i]->rrtype, rd[r].data, rd[r].len);
				keydir_rdata_free(rd, nrd);
			}
			free(z);
		}
	}
	keydir_key_list_free(keys, n);
	/* A name reached from two copies contributes its records twice: keep one. */
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), sync_rec_cmp);
	size_t w = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (w > 0 && sync_rec_cmp(&s->v[w - 1], &s->v[i]) == 0) {
			free(s->v[i].owner);
			free(s->v[i].rd);
			continue;
		}
		s->v[w++] = s->v[i];
	}
	s->n = w;
}

/* Report each record that differs and mark its name. */
static void sync_diff(struct keydir *kd, struct sync_set *have, struct sync_set *want,
		      struct keydir_report *rep)
{
	size_t i = 0, j = 0;
	const char *marked = NULL;
	uint16_t marked_type = 0;

	if (have->n)
		qsort(have->v, have->n, sizeof(*have->v), sync_rec_cmp);
	while (i < have->n || j < want->n) {
		int c = i >= have->n ? 1 : j >= want->n ? -1 : sync_rec_cmp(&have->v[i], &want->v[j]);
		const struct sync_rec *r;

		if (c == 0) {
			i++;
			j++;
			continue;
		}
		r = c < 0 ? &have->v[i++] : &want->v[j++];
		keydir_report_add(rep, c < 0 ? "remove" : "add", "dns", r->owner,
				  keydir_rrtype_name(r->type));
		if (!marked || strcmp(marked, r->owner) != 0 || marked_type != r->type) {
			keydir_store_mark(kd->db, r->owner, r->type);
			marked = r->owner;
			marked_type = r->type;
		}
	}
}

/* Zones to transfer: [keydir] zones, or every domain of accounts and keys. */
static char **sync_zones(struct keydir *kd, size_t *n)
{
	struct db_stmt *st = db_prepare(kd->db, "SELECT addr FROM addresses UNION"
					      " SELECT addr FROM keydir_keys");
	char **v = NULL;

	*n = 0;
	while (db_step_row(kd->db, st)) {
		const char *at = strrchr(db_col_text(st, 0), '@');
		char *z = at ? keydir_zone_of(kd->cfg, at + 1) : NULL;
		bool seen = z == NULL;

		for (size_t i = 0; i < *n && !seen; i++)
			seen = strcmp(v[i], z) == 0;
		if (seen) {
			free(z);
			continue;
		}
		v = xreallocarray(v, *n + 1, sizeof(*v));
		v[(*n)++] = z;
	}
	db_finalize(st);
	return v;
}

static int keydir_sync_zone(struct keydir *kd, const char *zone, struct keydir_report *rep)
{
	struct sync_set have = { .zone = zone }, want = { .zone = zone };
	char *err = NULL;

	if (keydir_dns_axfr(&kd->cfg->keydir, zone, sync_axfr_cb, &have, &err) < 0) {
		keydir_report_error(rep, err);
		log_warn("event=keydir_sync zone=%s error=\"%s\"", zone, err);
		free(err);
		sync_set_free(&have);
		return -1;
	}
	sync_wanted(kd, zone, &want);
	sync_diff(kd, &have, &want, rep);
	log_info("event=keydir_sync zone=%s records=%zu wanted=%zu", zone, have.n, want.n);
	sync_set_free(&have);
	sync_set_free(&want);
	return 0;
}

int keydir_sync(struct keydir *kd, int64_t now, struct keydir_report *rep)
{
	struct keydir_report sub = { 0 };
	int rc = 0;

	if (keydir_dns_mode(kd->cfg)) {
		size_t nz;
		char **zones = sync_zones(kd, &nz);

		for (size_t i = 0; i < nz; i++) {
			if (keydir_sync_zone(kd, zones[i], rep) < 0)
				rc = -1;
			free(zones[i]);
		}
		free(zones);
	} else {
		bool changed = false;
		char *err = NULL, *path = keydir_zone_file(kd->cfg);

		if (keydir_file_zone(kd, &changed, &err) < 0) {
			keydir_report_error(rep, err);
			free(err);
			rc = -1;
		} else if (changed) {
			keydir_report_add(rep, "write", "zone-file", path, "zone-file");
		}
		free(path);
	}
	/* Every marked name (and any left from earlier failures) is sent now. */
	if (keydir_reconcile(kd, true, now, &sub) < 0) {
		keydir_report_error(rep, sub.error);
		rc = -1;
	}
	rep->done += sub.done;
	rep->failed += sub.failed;
	keydir_report_free(&sub);
	if (keydir_file_wkd_sync(kd, rep) < 0)
		rc = -1;
	return rc;
}
