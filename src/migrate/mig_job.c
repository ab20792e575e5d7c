/*
 * mig_job.c - migration job records through the storage layer (see mig_job.h).
 */
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

int mig_job_save(struct db *db, int64_t id, struct mig_mail *m)
{
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nfolders && rc == 0; i++) {
		struct mig_folder *f = &m->folders[i];
		struct db_stmt *st;

		if (!f->dirty)
			continue;
		/* the folder name is the user's own data at the destination too; kept for resume */
		st = db_prepare_cached(db,
			"INSERT INTO mig_folders (job_id, folder, dest_folder, uidvalidity, last_uid, "
			"messages, bytes, failed, started, finished, error) "
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
			"ON CONFLICT (job_id, folder) DO UPDATE SET dest_folder = excluded.dest_folder, "
			"uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
			"messages = excluded.messages, bytes = excluded.bytes, failed = excluded.failed, "
			"started = excluded.started, finished = excluded.finished, error = excluded.error");
		if (st == NULL)
			break;
		db_bind_int(st, 1, id);
		db_bind_text(st, 2, f->src);
		db_bind_text(st, 3, f->dst);
		db_bind_int(st, 4, f->uidvalidity);
		db_bind_int(st, 5, f->last_uid);
		db_bind_int(st, 6, (int64_t)(f->copied + f->present));
		db_bind_int(st, 7, (int64_t)f->bytes);
		db_bind_int(st, 8, (int64_t)f->failed);
		db_bind_int(st, 9, f->started);
		db_bind_int(st, 10, f->finished);
		db_bind_text(st, 11, f->error ? f->error : "");
		rc = db_step_done(db, st) == DB_DONE ? 0 : -1;
		db_release(db, st);
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
