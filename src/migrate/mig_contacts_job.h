/*
 * mig_contacts_job.h - an address book job under serve's API (mig_api.c starts it): the
 * copy (mig_contacts) in a thread of its own, its progress in the job record, cancellation
 * through the record, and its end.
 *
 * The job record maps address books onto the mail job's columns: folders are address
 * books, messages are contacts (messages_done: contacts written, messages_total: contacts
 * found less those already at the destination), bytes are the bytes of the cards written.
 * A folder's row counts the cards there (written now or before) and its error.
 *
 * The source URL, the source user and both credentials live only in this job's memory;
 * the credentials are wiped when the copy ends, and every text the record or the log gets
 * has the source's host, URL and user replaced (an old server's error may quote them).
 */
#ifndef PW_MIG_CONTACTS_JOB_H
#define PW_MIG_CONTACTS_JOB_H

#include <stdatomic.h>
#include <stdint.h>

struct db;
struct mig_api_body;
struct pw_config;

struct mig_contacts_job;

/*
 * A job from a checked body (kind contacts) and [migrate]: takes the body's credentials
 * (set to NULL there). NULL with *err (static text) when this node cannot run it.
 */
struct mig_contacts_job *mig_contacts_job_new(struct mig_api_body *b,
					      const struct pw_config *cfg, const char **err);
/*
 * Run job id to its end (in the job's thread, with its own database connection): progress
 * four times a second, a cancel asked in the record or *stopping (serve stopping: the job
 * ends interrupted) stop it; the end state, totals and error written.
 */
void mig_contacts_job_run(struct mig_contacts_job *j, struct db *db, int64_t id,
			  const atomic_bool *stopping);
/* Wipes what is left. NULL is fine. */
void mig_contacts_job_free(struct mig_contacts_job *j);

#endif
