/*
 * ct_store.c - the CT monitor's tables through the storage layer; see ct_store.h.
 */
#include "ct_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

int ct_store_log_register(struct db *db, const char *log_id, const char *url, const char *api)
{
	struct db_stmt *st = db_prepare(db,
		"INSERT INTO ct_logs (log_id, url, api, updated) VALUES (?1, ?2, ?3, ?4) "
		"ON CONFLICT (log_id) DO UPDATE SET url = excluded.url, api = excluded.api");
	int rc;

	db_bind_text(st, 1, log_id);
	db_bind_text(st, 2, url);
	db_bind_text(st, 3, api);
	db_bind_int(st, 4, (int64_t)time(NULL));
	rc = db_step_done(db, st);
	db_finalize(st);
	return rc == DB_DONE ? DB_OK : rc;
}

static char *ct_strdup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int ct_store_log_load(struct db *db, const char *log_id, struct ct_log_pos *out)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT url, api, tree_size, root_hash, sth_timestamp, next_index, range_state, "
		"last_success, last_error FROM ct_logs WHERE log_id = ?");
	const void *blob;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	db_bind_text(st, 1, log_id);
	rc = db_step(db, st);
	if (rc == DB_ROW) {
		out->log_id = xstrdup(log_id);
		out->url = xstrdup(db_col_text(st, 0));
		out->api = xstrdup(db_col_text(st, 1));
		out->tree_size = db_col_int(st, 2);
		blob = db_col_blob(st, 3, &len);
		if (blob != NULL && len == CT_HASH_LEN) {
			memcpy(out->root_hash, blob, CT_HASH_LEN);
			out->has_root = true;
		}
		out->sth_timestamp = db_col_int(st, 4);
		out->next_index = db_col_int(st, 5);
		blob = db_col_blob(st, 6, &len);
		if (blob != NULL && len > 0) {
			out->range_state = xmalloc(len);
			memcpy(out->range_state, blob, len);
			out->range_len = len;
		}
		out->last_success = db_col_int(st, 7);
		out->last_error = ct_strdup0(db_col_text_or_null(st, 8));
	}
	db_finalize(st);
	return rc;
}

void ct_log_pos_free(struct ct_log_pos *st)
{
	free(st->log_id);
	free(st->url);
	free(st->api);
	free(st->range_state);
	free(st->last_error);
	memset(st, 0, sizeof(*st));
}

/* Insert f unless its identity is known; its id either way (0 on an error). */
static int64_t ct_store_finding_id(struct db *db, const struct ct_finding *f, int64_t now,
				   bool *is_new)
{
	struct db_stmt *st = db_prepare_cached(db,
		"INSERT INTO ct_findings (identity, names, issuer, serial, spki_sha256, not_before, "
		"not_after, verdict, reason, first_seen, issuer_key_sha256, caa) "
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (identity) DO NOTHING RETURNING id");
	int64_t id = 0;

	db_bind_blob(st, 1, f->identity, CT_HASH_LEN);
	db_bind_text(st, 2, f->names);
	db_bind_text(st, 3, f->issuer);
	db_bind_text(st, 4, f->serial);
	db_bind_text(st, 5, f->spki_sha256);
	db_bind_int(st, 6, f->not_before);
	db_bind_int(st, 7, f->not_after);
	db_bind_text(st, 8, f->verdict);
	db_bind_text(st, 9, f->reason);
	db_bind_int(st, 10, now);
	db_bind_text(st, 11, f->issuer_key_sha256 ? f->issuer_key_sha256 : "");
	db_bind_text(st, 12, f->caa ? f->caa : "");
	*is_new = db_step_row(db, st);
	if (*is_new) {
		id = db_col_int(st, 0);
		db_step_finish(db, st);
	}
	db_release(db, st);
	if (*is_new)
		return id;
	st = db_prepare_cached(db, "SELECT id FROM ct_findings WHERE identity = ?");
	db_bind_blob(st, 1, f->identity, CT_HASH_LEN);
	if (db_step_row(db, st))
		id = db_col_int(st, 0);
	db_release(db, st);
	return id;
}

/* Where f was seen: one row per log entry (an entry checked again adds nothing). */
static void ct_store_sighting(struct db *db, const char *log_id, const struct ct_finding *f,
			      int64_t now)
{
	struct db_stmt *st = db_prepare_cached(db,
		"INSERT INTO ct_sightings (log_id, idx, finding_id, precert, seen) "
		"VALUES (?, ?, ?, ?, ?) ON CONFLICT (log_id, idx) DO NOTHING");

	db_bind_text(st, 1, log_id);
	db_bind_int(st, 2, f->index);
	db_bind_int(st, 3, f->id);
	db_bind_int(st, 4, f->precert);
	db_bind_int(st, 5, now);
	db_step_done(db, st);
	db_release(db, st);
}

/* Move the log to its new position if it is still at from; rows changed (0 or 1). */
static int64_t ct_store_move(struct db *db, const struct ct_log_pos *to, int64_t from,
			     int64_t now)
{
	struct db_stmt *st = db_prepare_cached(db,
		"UPDATE ct_logs SET tree_size = ?, root_hash = ?, sth_timestamp = ?, "
		"next_index = ?, range_state = ?, last_success = ?, last_error = NULL, updated = ? "
		"WHERE log_id = ? AND next_index = ?");
	int64_t changed = 0;

	db_bind_int(st, 1, to->tree_size);
	if (to->has_root)
		db_bind_blob(st, 2, to->root_hash, CT_HASH_LEN);
	else
		db_bind_null(st, 2);
	db_bind_int(st, 3, to->sth_timestamp);
	db_bind_int(st, 4, to->next_index);
	if (to->range_state != NULL)
		db_bind_blob(st, 5, to->range_state, to->range_len);
	else
		db_bind_null(st, 5);
	db_bind_int(st, 6, now);
	db_bind_int(st, 7, now);
	db_bind_text(st, 8, to->log_id);
	db_bind_int(st, 9, from);
	if (db_step_done(db, st) == DB_DONE)
		changed = db_changes(db);
	db_release(db, st);
	return changed;
}

int ct_store_advance(struct db *db, const struct ct_log_pos *to, int64_t from,
		     struct ct_finding *findings, size_t n, size_t *new_findings)
{
	int64_t now = (int64_t)time(NULL);
	size_t fresh = 0;
	int rc;

	if (new_findings != NULL)
		*new_findings = 0;
	if ((rc = db_begin(db)) != DB_OK) {
		db_rollback(db);
		return rc;
	}
	if (ct_store_move(db, to, from, now) != 1) {
		/* another node moved it, or the row is gone: this batch is not ours to write */
		rc = db_error(db);
		db_rollback(db);
		return rc != DB_OK ? rc : DB_CONSTRAINT;
	}
	for (size_t i = 0; i < n; i++) {
		bool is_new = false;

		findings[i].id = ct_store_finding_id(db, &findings[i], now, &is_new);
		fresh += is_new;
		ct_store_sighting(db, to->log_id, &findings[i], now);
	}
	if ((rc = db_commit(db)) != DB_OK) {
		db_rollback(db);
		return rc;
	}
	if (new_findings != NULL)
		*new_findings = fresh;
	return DB_OK;
}

/*
 * An INSERT of an alert that does nothing when an alert of the same kind and log already
 * matches `same` (a condition on ct_alerts; ?4 is the new message). The callers differ
 * only in what counts as the same alert.
 */
#define CT_ALERT_INSERT_UNLESS(same) \
	"INSERT INTO ct_alerts (kind, log_id, created, message, evidence) " \
	"SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM ct_alerts " \
	"WHERE kind = ?1 AND COALESCE(log_id, '') = COALESCE(?2, '') AND " same ")"

/* Runs a CT_ALERT_INSERT_UNLESS statement: DB_OK or the storage error; *made says whether
 * a row was added. */
static int ct_store_alert_insert(struct db *db, const char *sql, const char *kind,
				 const char *log_id, const char *message, const char *evidence,
				 bool *made)
{
	struct db_stmt *st = db_prepare(db, sql);
	int rc;

	db_bind_text(st, 1, kind);
	db_bind_text(st, 2, log_id);
	db_bind_int(st, 3, (int64_t)time(NULL));
	db_bind_text(st, 4, message);
	db_bind_text(st, 5, evidence);
	rc = db_step_done(db, st);
	*made = rc == DB_DONE && db_changes(db) == 1;
	db_finalize(st);
	return rc == DB_DONE ? DB_OK : rc;
}

int ct_store_alert_add(struct db *db, const char *kind, const char *log_id,
		       const char *message, const char *evidence)
{
	bool made;

	/* the same misbehaviour seen again (every round of a log that stays broken) is one */
	return ct_store_alert_insert(db, CT_ALERT_INSERT_UNLESS("message = ?4"), kind, log_id,
				     message, evidence, &made);
}

bool ct_store_ack(struct db *db, int64_t id, int64_t now)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE ct_findings SET acked = COALESCE(acked, ?) WHERE id = ?");
	bool found = false;

	db_bind_int(st, 1, now);
	db_bind_int(st, 2, id);
	if (db_step_done(db, st) == DB_DONE)
		found = db_changes(db) == 1;
	db_finalize(st);
	return found;
}

#define CT_FINDING_COLUMNS \
	"id, names, issuer, serial, spki_sha256, not_before, not_after, verdict, reason, " \
	"first_seen, acked, issuer_key_sha256, caa"

/* The finding at the statement's current row (CT_FINDING_COLUMNS) as JSON. */
static json_t *ct_finding_row_json(struct db_stmt *st)
{
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:b}",
		"id", (json_int_t)db_col_int(st, 0), "names", db_col_text(st, 1),
		"issuer", db_col_text(st, 2), "serial", db_col_text(st, 3),
		"spki_sha256", db_col_text(st, 4), "not_before", (json_int_t)db_col_int(st, 5),
		"not_after", (json_int_t)db_col_int(st, 6), "verdict", db_col_text(st, 7),
		"reason", db_col_text(st, 8), "first_seen", (json_int_t)db_col_int(st, 9),
		"acked", !db_col_null(st, 10));

	if (o == NULL)
		fatalx("cannot encode a finding");
	if (!db_col_null(st, 10))
		json_object_set_new(o, "acked_at", json_integer(db_col_int(st, 10)));
	/* "" when not known (and for findings stored before schema 5) */
	json_object_set_new(o, "issuer_key_sha256", json_string(db_col_text(st, 11)));
	json_object_set_new(o, "caa", json_string(db_col_text(st, 12)));
	return o;
}

json_t *ct_store_findings_json(struct db *db, bool unexpected_only, size_t limit)
{
	struct db_stmt *st = db_prepare(db, unexpected_only
		? "SELECT " CT_FINDING_COLUMNS " FROM ct_findings WHERE verdict <> 'expected' "
		  "ORDER BY id DESC LIMIT ?"
		: "SELECT " CT_FINDING_COLUMNS " FROM ct_findings ORDER BY id DESC LIMIT ?");
	json_t *arr = json_array();

	db_clear_error(db);
	db_bind_int(st, 1, (int64_t)limit);
	while (db_step_row(db, st))
		json_array_append_new(arr, ct_finding_row_json(st));
	db_finalize(st);
	if (db_error(db) != DB_OK) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* The log entries a finding was seen in. */
static json_t *ct_store_sightings_json(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT s.log_id, s.idx, s.precert, s.seen, COALESCE(l.url, '') FROM ct_sightings s "
		"LEFT JOIN ct_logs l ON l.log_id = s.log_id WHERE s.finding_id = ? "
		"ORDER BY s.seen, s.log_id, s.idx");
	json_t *arr = json_array();

	db_bind_int(st, 1, id);
	while (db_step_row(db, st))
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:b, s:I}",
			"log_id", db_col_text(st, 0), "log_url", db_col_text(st, 4),
			"index", (json_int_t)db_col_int(st, 1), "precert", db_col_int(st, 2) != 0,
			"seen", (json_int_t)db_col_int(st, 3)));
	db_finalize(st);
	return arr;
}

json_t *ct_store_finding_json(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT " CT_FINDING_COLUMNS " FROM ct_findings WHERE id = ?");
	json_t *o = NULL;

	db_clear_error(db);
	db_bind_int(st, 1, id);
	if (db_step_row(db, st))
		o = ct_finding_row_json(st);
	db_finalize(st);
	if (o != NULL)
		json_object_set_new(o, "seen_in", ct_store_sightings_json(db, id));
	if (o != NULL && db_error(db) != DB_OK) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* ---- delivery ----------------------------------------------------------------------- */

int ct_store_delivery_enqueue(struct db *db, const char *channel, int64_t now)
{
	static const char *const sql[] = {
		"INSERT INTO ct_deliveries (item, item_id, channel, created) "
		"SELECT 'finding', f.id, ?1, ?2 FROM ct_findings f "
		"WHERE f.verdict <> 'expected' AND f.acked IS NULL AND NOT EXISTS ("
		"SELECT 1 FROM ct_deliveries d WHERE d.item = 'finding' AND d.item_id = f.id "
		"AND d.channel = ?1) ON CONFLICT DO NOTHING",
		"INSERT INTO ct_deliveries (item, item_id, channel, created) "
		"SELECT 'alert', a.id, ?1, ?2 FROM ct_alerts a WHERE NOT EXISTS ("
		"SELECT 1 FROM ct_deliveries d WHERE d.item = 'alert' AND d.item_id = a.id "
		"AND d.channel = ?1) ON CONFLICT DO NOTHING",
	};
	int rc = DB_OK;

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]) && rc == DB_OK; i++) {
		struct db_stmt *st = db_prepare(db, sql[i]);
		int r;

		db_bind_text(st, 1, channel);
		db_bind_int(st, 2, now);
		r = db_step_done(db, st);
		db_finalize(st);
		rc = r == DB_DONE ? DB_OK : r;
	}
	return rc;
}

size_t ct_store_delivery_due(struct db *db, const char *channel, int64_t now,
			     struct ct_due *out, size_t max)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT item, item_id, attempts FROM ct_deliveries WHERE channel = ?1 AND "
		"done IS NULL AND next_attempt <= ?2 AND (claim_until IS NULL OR claim_until < ?2) "
		"ORDER BY next_attempt, item, item_id LIMIT ?3");
	size_t n = 0;

	db_bind_text(st, 1, channel);
	db_bind_int(st, 2, now);
	db_bind_int(st, 3, (int64_t)max);
	while (n < max && db_step_row(db, st)) {
		snprintf(out[n].item, sizeof(out[n].item), "%s", db_col_text(st, 0));
		out[n].id = db_col_int(st, 1);
		out[n].attempts = (int)db_col_int(st, 2);
		n++;
	}
	db_finalize(st);
	return n;
}

bool ct_store_delivery_claim(struct db *db, const struct ct_due *d, const char *channel,
			     const char *node, int64_t now, int64_t until)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE ct_deliveries SET claimed_by = ?1, claim_until = ?2 WHERE item = ?3 AND "
		"item_id = ?4 AND channel = ?5 AND done IS NULL AND next_attempt <= ?6 AND "
		"(claim_until IS NULL OR claim_until < ?6)");
	bool mine = false;

	db_bind_text(st, 1, node);
	db_bind_int(st, 2, until);
	db_bind_text(st, 3, d->item);
	db_bind_int(st, 4, d->id);
	db_bind_text(st, 5, channel);
	db_bind_int(st, 6, now);
	if (db_step_done(db, st) == DB_DONE)
		mine = db_changes(db) == 1;
	db_finalize(st);
	return mine;
}

/* A statement with the row's key bound at ?1 (item), ?2 (id), ?3 (channel). */
static struct db_stmt *ct_store_delivery_stmt(struct db *db, const char *sql,
					      const struct ct_due *d, const char *channel)
{
	struct db_stmt *st = db_prepare(db, sql);

	db_bind_text(st, 1, d->item);
	db_bind_int(st, 2, d->id);
	db_bind_text(st, 3, channel);
	return st;
}

static void ct_store_run(struct db *db, struct db_stmt *st)
{
	db_step_done(db, st);
	db_finalize(st);
}

void ct_store_delivery_done(struct db *db, const struct ct_due *d, const char *channel,
			    int64_t now)
{
	struct db_stmt *st = ct_store_delivery_stmt(db, "UPDATE ct_deliveries SET done = ?4, "
		"attempts = attempts + 1, claim_until = NULL, last_error = NULL WHERE item = ?1 "
		"AND item_id = ?2 AND channel = ?3", d, channel);

	db_bind_int(st, 4, now);
	ct_store_run(db, st);
	/* alerted: when it first went out on any channel (ct show, and schema 4's readers) */
	st = db_prepare(db, strcmp(d->item, "finding") == 0
		? "UPDATE ct_findings SET alerted = COALESCE(alerted, ?) WHERE id = ?"
		: "UPDATE ct_alerts SET alerted = COALESCE(alerted, ?) WHERE id = ?");
	db_bind_int(st, 1, now);
	db_bind_int(st, 2, d->id);
	ct_store_run(db, st);
}

void ct_store_delivery_failed(struct db *db, const struct ct_due *d, const char *channel,
			      int64_t next_attempt, const char *error)
{
	struct db_stmt *st = ct_store_delivery_stmt(db, "UPDATE ct_deliveries SET "
		"attempts = attempts + 1, next_attempt = ?4, claim_until = NULL, last_error = ?5 "
		"WHERE item = ?1 AND item_id = ?2 AND channel = ?3", d, channel);

	db_bind_int(st, 4, next_attempt);
	db_bind_text(st, 5, error);
	ct_store_run(db, st);
}

void ct_store_delivery_release(struct db *db, const struct ct_due *d, const char *channel)
{
	ct_store_run(db, ct_store_delivery_stmt(db, "UPDATE ct_deliveries SET claim_until = NULL "
		"WHERE item = ?1 AND item_id = ?2 AND channel = ?3 AND done IS NULL", d, channel));
}

int64_t ct_store_max_id(struct db *db, const char *table)
{
	return db_query_int(db, strcmp(table, "ct_findings") == 0
		? "SELECT COALESCE(MAX(id), 0) FROM ct_findings"
		: "SELECT COALESCE(MAX(id), 0) FROM ct_alerts", 0);
}

size_t ct_store_ids_after(struct db *db, const char *item, int64_t after, int64_t *out,
			  size_t max)
{
	struct db_stmt *st = db_prepare(db, strcmp(item, "finding") == 0
		? "SELECT id FROM ct_findings WHERE id > ? AND verdict <> 'expected' "
		  "ORDER BY id LIMIT ?"
		: "SELECT id FROM ct_alerts WHERE id > ? ORDER BY id LIMIT ?");
	size_t n = 0;

	db_bind_int(st, 1, after);
	db_bind_int(st, 2, (int64_t)max);
	while (n < max && db_step_row(db, st))
		out[n++] = db_col_int(st, 0);
	db_finalize(st);
	return n;
}

/* ---- health episodes ---------------------------------------------------------------- */

bool ct_store_health_open(struct db *db, const char *kind, const char *log_id,
			  const char *message, const char *evidence)
{
	bool made;

	/* one open episode per kind and log: a new one only after the last was resolved */
	ct_store_alert_insert(db, CT_ALERT_INSERT_UNLESS("resolved IS NULL"), kind, log_id,
			      message, evidence, &made);
	return made;
}

void ct_store_health_close(struct db *db, const char *kind, const char *log_id)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE ct_alerts SET resolved = ?3 WHERE kind = ?1 AND "
		"COALESCE(log_id, '') = COALESCE(?2, '') AND resolved IS NULL");

	db_bind_text(st, 1, kind);
	db_bind_text(st, 2, log_id);
	db_bind_int(st, 3, (int64_t)time(NULL));
	if (db_step_done(db, st) == DB_DONE && db_changes(db) > 0)
		log_info("event=ct_health_resolved kind=%s log=%s", kind, log_id ? log_id : "-");
	db_finalize(st);
}

json_t *ct_store_alert_json(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT a.id, a.kind, a.log_id, COALESCE(l.url, ''), a.message, "
		"COALESCE(a.evidence, ''), a.created, a.resolved FROM ct_alerts a "
		"LEFT JOIN ct_logs l ON l.log_id = a.log_id WHERE a.id = ?");
	json_t *o = NULL;

	db_bind_int(st, 1, id);
	if (db_step_row(db, st)) {
		o = json_pack("{s:I, s:s, s:s?, s:s, s:s, s:s, s:I}",
			"id", (json_int_t)db_col_int(st, 0), "kind", db_col_text(st, 1),
			"log_id", db_col_text_or_null(st, 2), "log_url", db_col_text(st, 3),
			"message", db_col_text(st, 4), "evidence", db_col_text(st, 5),
			"created", (json_int_t)db_col_int(st, 6));
		if (o == NULL)
			fatalx("cannot encode an alert");
		if (!db_col_null(st, 7))
			json_object_set_new(o, "resolved", json_integer(db_col_int(st, 7)));
	}
	db_finalize(st);
	return o;
}

bool ct_store_finding_identity(struct db *db, int64_t id, char out[65])
{
	struct db_stmt *st = db_prepare(db, "SELECT identity FROM ct_findings WHERE id = ?");
	const void *blob;
	size_t len = 0;
	bool found = false;

	db_bind_int(st, 1, id);
	if (db_step_row(db, st) && (blob = db_col_blob(st, 0, &len)) != NULL &&
	    len == CT_HASH_LEN) {
		hex_encode(blob, len, out);
		found = true;
	}
	db_finalize(st);
	return found;
}
