/*
 * mig_job.h - the record of a migration job in the database (schema 7): counts, timings and
 * errors per folder, and per folder the UIDVALIDITY and highest UID copied, so that a job
 * resumes where it stopped, on any node. It never holds the source server, the source user
 * name or a credential: a job is found by its id together with the destination account.
 */
#ifndef PW_MIG_JOB_H
#define PW_MIG_JOB_H

#include <stdint.h>

#include "db.h"
#include "mig_mail.h"

/* A new job for dest_user; its id, or -1 on a database error. */
int64_t mig_job_create(struct db *db, const char *kind, const char *dest_user);
/* 1 when job id exists for dest_user, 0 when not, -1 on a database error. */
int mig_job_check(struct db *db, int64_t id, const char *dest_user);
/* Fill each folder's saved UIDVALIDITY and highest UID from the record. */
int mig_job_load(struct db *db, int64_t id, struct mig_mail *m);
/* Write the folders marked dirty (and clear the mark). 0 or a db_rc. */
int mig_job_save(struct db *db, int64_t id, struct mig_mail *m);
/* The job's end: state "done", "partial" or "failed", totals and the job-level error. */
int mig_job_finish(struct db *db, int64_t id, const char *state, const struct mig_progress *p,
		   const char *error);

#endif
