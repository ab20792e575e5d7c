/*
 * relay_storage.h - is there room to accept mail? The relay's view of its state_dir.
 *
 * A full disk (or a database that cannot be written) must not stop the relay: writes that
 * fail are errors of their operation, and while storage is short new mail is answered
 * "452 4.3.1 Insufficient system storage" (at MAIL and at DATA) instead of being taken and
 * then lost or refused after its data. The condition starts at a failed write or when free
 * space on state_dir falls below STORAGE_MIN_FREE, and ends by itself once free space is
 * back and no write has failed for a while (the hold time, which grows when the condition
 * keeps coming back, so a failing disk does not flood the log). Its start and its end are
 * logged once each, not once per message.
 *
 * Used from the event loop and from the queue's worker thread: every function locks.
 */
#ifndef PW_RELAY_STORAGE_H
#define PW_RELAY_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#define STORAGE_MIN_FREE	(1024 * 1024)	/* bytes free on state_dir, beyond a message */
#define STORAGE_MIN_INODES	64
#define STORAGE_HOLD_MS		2000		/* first hold time after a failed write */
#define STORAGE_HOLD_MAX_MS	64000
/* after a busy or locked database: longer than SQLite's busy timeout (10 s), so that a lock
 * held for long is one condition, not one per failed wait */
#define STORAGE_HOLD_BUSY_MS	12000

struct storage;

/* Watch the file system holding dir. */
struct storage *storage_new(const char *dir);
void storage_free(struct storage *st);
/* A write failed: what ("spool", "database"), error (the system's or SQLite's text). */
void storage_failed(struct storage *st, const char *what, const char *error);
/* A database write failed with SQLite code rc (busy/locked hold longer, see above). */
void storage_db_failed(struct storage *st, int rc, const char *error);
/* Is the condition on (a write failed recently or space is short)? Cheap, no system call. */
bool storage_short(struct storage *st);
/* Is the condition on because the database server is away (not the disk)? */
bool storage_db_away(struct storage *st);
/*
 * May a message of size octets (0: unknown) be accepted now? Looks at free space (at most
 * once a second) and starts or ends the condition.
 */
bool storage_accepts(struct storage *st, uint64_t size);

/*
 * The decision itself, without clocks or file systems (for tests): the condition after an
 * observation of free bytes and inodes (inodes < 0: not reported) at now_ms.
 */
struct storage_state {
	bool on;		/* the condition */
	int64_t last_failure_ms;	/* of a write; 0: none */
	int64_t ended_ms;	/* when the condition last ended; 0: never */
	int64_t hold_ms;	/* current hold time */
};
/* Returns +1 when the condition started, -1 when it ended, 0 when unchanged. */
int storage_observe(struct storage_state *s, int64_t now_ms, int64_t free_bytes,
		    int64_t free_inodes);
/* A write failed at now_ms, to be held at least hold_min_ms; +1 when that started the
 * condition. */
int storage_note_failure(struct storage_state *s, int64_t now_ms, int64_t hold_min_ms);

#endif
