/*
 * mig_job.c - migration job records through the storage layer (see mig_job.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mig_job.h"

int64_t mig_job_create(struct db *db, const char *kind, const char *dest_user)
{
	struct db_stmt *st = db_prepare(db,
		"INSERT INTO mig_jobs (kind, dest_user, created, started) VALUES (?, ?, ?, ?) RETURNING id");
	int64_t id = -1;
	time_t now = time(NULL);

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, kind);
	db_bind_text(st, 2, dest_user);
	db_bind_int(st, 3, now);
	db_bind_int(st, 4, now);
	if (db_step_row(db, st)) {
		id = db_col_int(st, 0);
		if (db_step_finish(db, st) != DB_DONE)
			id = -1;
	}
	db_finalize(st);
	return id;
}

int mig_job_check(struct db *db, int64_t id, const char *dest_user)
{
	struct db_stmt *st = db_prepare(db, "SELECT 1 FROM mig_jobs WHERE id = ? AND dest_user = ?");
	int found;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, dest_user);
	found = db_step_row(db, st) ? 1 : (db_error(db) != DB_OK ? -1 : 0);
	db_finalize(st);
	if (found == 1) {
		st = db_prepare(db, "UPDATE mig_jobs SET state = 'running', started = ? WHERE id = ?");
		if (st == NULL)
			return -1;
		db_bind_int(st, 1, time(NULL));
		db_bind_int(st, 2, id);
		db_step_done(db, st);
		db_finalize(st);
	}
	return found;
}

int mig_job_load(struct db *db, int64_t id, struct mig_mail *m)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT folder, uidvalidity, last_uid FROM mig_folders WHERE job_id = ?");

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	while (db_step_row(db, st)) {
		struct mig_folder *f = mig_mail_folder(m, db_col_text(st, 0));

		if (f != NULL) {
			f->saved_uidvalidity = (uint32_t)db_col_int(st, 1);
			f->saved_last_uid = (uint32_t)db_col_int(st, 2);
		}
	}
	db_finalize(st);
	return db_error(db) == DB_OK ? 0 : -1;
}

int mig_job_save_folder(struct db *db, int64_t id, const struct mig_job_folder *f)
{
	/* the folder name is the user's own data at the destination too; kept for resume */
	struct db_stmt *st = db_prepare_cached(db,
		"INSERT INTO mig_folders (job_id, folder, dest_folder, uidvalidity, last_uid, "
		"messages, bytes, failed, started, finished, error) "
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (job_id, folder) DO UPDATE SET dest_folder = excluded.dest_folder, "
		"uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
		"messages = excluded.messages, bytes = excluded.bytes, failed = excluded.failed, "
		"started = excluded.started, finished = excluded.finished, error = excluded.error");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	db_bind_text(st, 2, f->folder);
	db_bind_text(st, 3, f->dest);
	db_bind_int(st, 4, f->uidvalidity);
	db_bind_int(st, 5, f->last_uid);
	db_bind_int(st, 6, (int64_t)f->messages);
	db_bind_int(st, 7, (int64_t)f->bytes);
	db_bind_int(st, 8, (int64_t)f->failed);
	db_bind_int(st, 9, f->started);
	db_bind_int(st, 10, f->finished);
	db_bind_text(st, 11, f->error ? f->error : "");
	rc = db_step_done(db, st) == DB_DONE ? 0 : -1;
	db_release(db, st);
	return rc;
}

int mig_job_save(struct db *db, int64_t id, struct mig_mail *m)
{
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nfolders && rc == 0; i++) {
		struct mig_folder *f = &m->folders[i];
		struct mig_job_folder row;

		if (!f->dirty)
			continue;
		row = (struct mig_job_folder){ .folder = f->src, .dest = f->dst,
			.uidvalidity = f->uidvalidity, .last_uid = f->last_uid,
			.messages = f->copied + f->present, .bytes = f->bytes, .failed = f->failed,
			.started = f->started, .finished = f->finished, .error = f->error };
		rc = mig_job_save_folder(db, id, &row);
		if (rc == 0)
			f->dirty = false;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int mig_job_finish(struct db *db, int64_t id, const char *state, const struct mig_progress *p,
		   const char *error)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE mig_jobs SET state = ?, finished = ?, messages = messages + ?, "
		"bytes = bytes + ?, failed = ?, error = ? WHERE id = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, state);
	db_bind_int(st, 2, time(NULL));
	db_bind_int(st, 3, (int64_t)p->msgs_done);
	db_bind_int(st, 4, (int64_t)p->bytes_done);
	db_bind_int(st, 5, (int64_t)p->failed);
	db_bind_text(st, 6, error ? error : "");
	db_bind_int(st, 7, id);
	rc = db_step_done(db, st) == DB_DONE ? 0 : -1;
	db_finalize(st);
	return rc;
}

/* ---- jobs run by serve's API ---- */

int mig_job_claim(struct db *db, int64_t id, const char *node)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE mig_jobs SET state = 'running', node = ?, heartbeat = ?, started = ?, "
		"cancel = 0, finished = 0, error = '' WHERE id = ?");
	time_t now = time(NULL);
	int rc;

	if (st == NULL)
		return -1;
	db_bind_text(st, 1, node);
	db_bind_int(st, 2, now);
	db_bind_int(st, 3, now);
	db_bind_int(st, 4, id);
	rc = db_step_done(db, st) == DB_DONE ? 0 : -1;
	db_finalize(st);
	return rc;
}

int mig_job_beat(struct db *db, int64_t id, const struct mig_progress *p)
{
	struct db_stmt *st = db_prepare_cached(db,
		"UPDATE mig_jobs SET heartbeat = ?, folders_total = ?, folders_done = ?, "
		"messages_total = ?, messages_done = ?, bytes_total = ?, bytes_done = ?, failed = ? "
		"WHERE id = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, time(NULL));
	db_bind_int(st, 2, p->folders_total);
	db_bind_int(st, 3, p->folders_done);
	db_bind_int(st, 4, (int64_t)p->msgs_total);
	db_bind_int(st, 5, (int64_t)p->msgs_done);
	db_bind_int(st, 6, (int64_t)p->bytes_total);
	db_bind_int(st, 7, (int64_t)p->bytes_done);
	db_bind_int(st, 8, (int64_t)p->failed);
	db_bind_int(st, 9, id);
	rc = db_step_done(db, st) == DB_DONE ? 0 : -1;
	db_release(db, st);
	if (rc < 0)
		return -1;
	st = db_prepare_cached(db, "SELECT cancel FROM mig_jobs WHERE id = ?");
	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	rc = db_step_row(db, st) ? db_col_int(st, 0) != 0 : -1;
	db_release(db, st);
	return rc;
}

int mig_job_cancel(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db, "UPDATE mig_jobs SET cancel = 1 WHERE id = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	rc = db_step_done(db, st) == DB_DONE ? (db_changes(db) > 0 ? 1 : 0) : -1;
	db_finalize(st);
	return rc;
}

/*
 * The five columns of LIVE_COLS at col: a running job whose node is gone (no heartbeat for
 * MIG_JOB_STALE seconds) or was restarted after the job started is interrupted. The node's
 * own heartbeat, not the job's, decides: a job waiting for a slow server writes nothing
 * while its node is alive. A job started by the command line (no node) keeps its state.
 */
#define LIVE_COLS "j.state, j.node, j.started, n.heartbeat, n.started"
#define LIVE_FROM " FROM mig_jobs j LEFT JOIN nodes n ON n.name = j.node"

static const char *live_state(struct db_stmt *st, int col, time_t now)
{
	const char *state = db_col_text(st, col);

	if (strcmp(state, "running") != 0 || *db_col_text(st, col + 1) == '\0')
		return state;
	if (db_col_null(st, col + 3) || db_col_int(st, col + 3) + MIG_JOB_STALE < (int64_t)now ||
	    db_col_int(st, col + 4) > db_col_int(st, col + 2))
		return "interrupted";
	return state;
}

int mig_job_owner(struct db *db, int64_t id, char *out, size_t outsz, bool *running_live,
		  time_t now)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT j.dest_user, " LIVE_COLS LIVE_FROM " WHERE j.id = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	if (db_step_row(db, st)) {
		snprintf(out, outsz, "%s", db_col_text(st, 0));
		*running_live = strcmp(live_state(st, 1, now), "running") == 0;
		rc = 1;
	} else {
		rc = db_error(db) != DB_OK ? -1 : 0;
	}
	db_finalize(st);
	return rc;
}

int mig_job_kind_is(struct db *db, int64_t id, const char *kind)
{
	struct db_stmt *st = db_prepare(db, "SELECT kind FROM mig_jobs WHERE id = ?");
	int rc;

	if (st == NULL)
		return -1;
	db_bind_int(st, 1, id);
	if (db_step_row(db, st))
		rc = strcmp(db_col_text(st, 0), kind) == 0;
	else
		rc = db_error(db) != DB_OK ? -1 : 0;
	db_finalize(st);
	return rc;
}

static void set_int(json_t *o, const char *k, int64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

static json_t *folders_json(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT folder, dest_folder, messages, bytes, failed, started, finished, error "
		"FROM mig_folders WHERE job_id = ? ORDER BY folder");
	json_t *a = json_array();

	if (st == NULL)
		return a;
	db_bind_int(st, 1, id);
	while (db_step_row(db, st)) {
		json_t *f = json_object();

		json_object_set_new(f, "folder", json_string(db_col_text(st, 0)));
		json_object_set_new(f, "destination", json_string(db_col_text(st, 1)));
		set_int(f, "messages", db_col_int(st, 2));
		set_int(f, "bytes", db_col_int(st, 3));
		set_int(f, "failed", db_col_int(st, 4));
		set_int(f, "started", db_col_int(st, 5));
		set_int(f, "finished", db_col_int(st, 6));
		if (*db_col_text(st, 7))
			json_object_set_new(f, "error", json_string(db_col_text(st, 7)));
		json_array_append_new(a, f);
	}
	db_finalize(st);
	return a;
}

/* messages per second and the seconds left, from the job's own counters */
static void rate_json(json_t *o, int64_t started, time_t now, int64_t msgs, int64_t bytes,
		      int64_t bytes_total, bool running)
{
	double el = (double)((int64_t)now - started);
	double rate = el > 0 ? (double)msgs / el : 0, brate = el > 0 ? (double)bytes / el : 0;

	json_object_set_new(o, "messages_per_second", json_real(rate));
	json_object_set_new(o, "bytes_per_second", json_real(brate));
	if (running && brate > 0 && bytes_total > bytes)
		set_int(o, "eta_seconds", (int64_t)((double)(bytes_total - bytes) / brate));
}

json_t *mig_job_json(struct db *db, int64_t id, time_t now, bool *dberr)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT j.kind, j.dest_user, j.state, j.created, j.started, j.finished, "
		"j.heartbeat, j.node, j.folders_total, j.folders_done, j.messages_total, "
		"j.messages_done, j.bytes_total, j.bytes_done, j.failed, j.error, j.messages, "
		"j.bytes, " LIVE_COLS LIVE_FROM " WHERE j.id = ?");
	json_t *o = NULL;

	*dberr = false;
	if (st == NULL) {
		*dberr = true;
		return NULL;
	}
	db_bind_int(st, 1, id);
	if (db_step_row(db, st)) {
		const char *state = live_state(st, 18, now);
		bool running = strcmp(state, "running") == 0;
		int64_t end = running ? (int64_t)now : db_col_int(st, 5);

		o = json_object();
		set_int(o, "id", id);
		json_object_set_new(o, "kind", json_string(db_col_text(st, 0)));
		json_object_set_new(o, "destination_user", json_string(db_col_text(st, 1)));
		json_object_set_new(o, "state", json_string(state));
		set_int(o, "created", db_col_int(st, 3));
		set_int(o, "started", db_col_int(st, 4));
		set_int(o, "finished", db_col_int(st, 5));
		set_int(o, "heartbeat", db_col_int(st, 6));
		json_object_set_new(o, "node", json_string(db_col_text(st, 7)));
		set_int(o, "folders_total", db_col_int(st, 8));
		set_int(o, "folders_done", db_col_int(st, 9));
		set_int(o, "messages_total", db_col_int(st, 10));
		set_int(o, "messages_done", db_col_int(st, 11));
		set_int(o, "bytes_total", db_col_int(st, 12));
		set_int(o, "bytes_done", db_col_int(st, 13));
		set_int(o, "failed", db_col_int(st, 14));
		if (*db_col_text(st, 15))
			json_object_set_new(o, "error", json_string(db_col_text(st, 15)));
		rate_json(o, db_col_int(st, 4), (time_t)end, db_col_int(st, 11), db_col_int(st, 13),
			  db_col_int(st, 12), running);
		if (!running && strcmp(state, "interrupted") != 0) {
			json_t *sum = json_object();

			set_int(sum, "messages_copied", db_col_int(st, 16));
			set_int(sum, "bytes_copied", db_col_int(st, 17));
			set_int(sum, "failed", db_col_int(st, 14));
			set_int(sum, "seconds", end - db_col_int(st, 4));
			json_object_set_new(o, "summary", sum);
		}
	} else if (db_error(db) != DB_OK) {
		*dberr = true;
	}
	db_finalize(st);
	if (o != NULL)
		json_object_set_new(o, "folders", folders_json(db, id));
	return o;
}

json_t *mig_job_list_json(struct db *db, const char *dest_user, time_t now, bool *dberr)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT j.id, j.kind, j.created, " LIVE_COLS LIVE_FROM " WHERE j.dest_user = ? "
		"ORDER BY j.id DESC LIMIT 100");
	json_t *a = json_array();

	*dberr = st == NULL;
	if (st == NULL)
		return a;
	db_bind_text(st, 1, dest_user);
	while (db_step_row(db, st)) {
		json_t *o = json_object();

		set_int(o, "id", db_col_int(st, 0));
		json_object_set_new(o, "kind", json_string(db_col_text(st, 1)));
		json_object_set_new(o, "state", json_string(live_state(st, 3, now)));
		set_int(o, "created", db_col_int(st, 2));
		json_array_append_new(a, o);
	}
	*dberr = db_error(db) != DB_OK;
	db_finalize(st);
	return a;
}
