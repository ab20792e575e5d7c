/*
 * mig_job.h - the record of a migration job in the database (schema 7): counts, timings and
 * errors per folder, and per folder the UIDVALIDITY and highest UID copied, so that a job
 * resumes where it stopped, on any node. It never holds the source server, the source user
 * name or a credential: a job is found by its id together with the destination account.
 */
#ifndef PW_MIG_JOB_H
#define PW_MIG_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "db.h"
#include "mig_mail.h"

/* A new job for dest_user; its id, or -1 on a database error. */
int64_t mig_job_create(struct db *db, const char *kind, const char *dest_user);
/* 1 when job id exists for dest_user, 0 when not, -1 on a database error. */
int mig_job_check(struct db *db, int64_t id, const char *dest_user);
/* Fill each folder's saved UIDVALIDITY and highest UID from the record. */
int mig_job_load(struct db *db, int64_t id, struct mig_mail *m);
/* One folder's row (a contacts job: one address book, its cards as messages). */
struct mig_job_folder {
	const char *folder, *dest;
	uint32_t uidvalidity, last_uid;
	uint64_t messages, bytes, failed;
	time_t started, finished;
	const char *error;	/* or NULL */
};
/* Write one folder's row (inserted or replaced). 0 or -1. */
int mig_job_save_folder(struct db *db, int64_t id, const struct mig_job_folder *f);
/* Write the folders marked dirty (and clear the mark). 0 or a db_rc. */
int mig_job_save(struct db *db, int64_t id, struct mig_mail *m);
/* The job's end: state "done", "partial" or "failed", totals and the job-level error. */
int mig_job_finish(struct db *db, int64_t id, const char *state, const struct mig_progress *p,
		   const char *error);

/* ---- jobs run by serve's API (schema 8) ---- */

/* A running job's node without a heartbeat for this long died: the job is interrupted. */
#define MIG_JOB_STALE 30

/* This node runs job id now: state running, node, heartbeat, cancel cleared. 0 or -1. */
int mig_job_claim(struct db *db, int64_t id, const char *node);
/*
 * The running job's live counters and heartbeat. 1 when a cancel was asked (on any node),
 * 0 when not, -1 on a database error.
 */
int mig_job_beat(struct db *db, int64_t id, const struct mig_progress *p);
/*
 * Ask job id of dest_user to stop: 1 asked (or already over), 0 no such job, -1 database
 * error. The running node sees it at its next beat.
 */
int mig_job_cancel(struct db *db, int64_t id);
/*
 * The job as the API shows it: state (running, interrupted when its node stopped or
 * was restarted, done, partial, failed, cancelled), counters, rate, ETA and per folder
 * counts and errors. NULL when there is no such job (*dberr set on a database error).
 */
json_t *mig_job_json(struct db *db, int64_t id, time_t now, bool *dberr);
/* The ids and states of dest_user's jobs, newest first (at most 100). */
json_t *mig_job_list_json(struct db *db, const char *dest_user, time_t now, bool *dberr);
/* dest_user of job id into out (size outsz): 1, 0 no such job, -1 database error. */
int mig_job_owner(struct db *db, int64_t id, char *out, size_t outsz, bool *running_live,
		  time_t now);
/* 1 when job id is of that kind ("mail", "contacts"), 0 when not or no such job, -1 on a
 * database error. */
int mig_job_kind_is(struct db *db, int64_t id, const char *kind);

#endif
