/*
 * mig_cred.h - credentials for a migration: read from a terminal without echo or from a file
 * descriptor the caller opened (--password-fd N), never from argv or the environment.
 *
 * A credential lives in memory of its own that is wiped (OPENSSL_cleanse) when it is freed,
 * so the old provider's password or token never outlives the job that needed it. Reads are
 * bounded: a line longer than MIG_CRED_MAX is refused rather than truncated.
 */
#ifndef PW_MIG_CRED_H
#define PW_MIG_CRED_H

#include <stddef.h>

/* Longest password or token accepted (OAuth access tokens can be a few kilobytes). */
#define MIG_CRED_MAX 8192

struct mig_cred {
	char *secret;	/* NUL-terminated; wiped and freed by mig_cred_free */
	size_t len;
};

/*
 * Read one line (the end of line is not part of it) from fd, at most MIG_CRED_MAX bytes.
 * End of input ends the line too. Returns a credential, or NULL with *err (static text) when
 * the descriptor cannot be read, the line is empty or it is too long.
 */
struct mig_cred *mig_cred_from_fd(int fd, const char **err);

/*
 * Prompt on the controlling terminal (/dev/tty) with echo off and read one line; echo is
 * restored even on error. NULL with *err when there is no terminal.
 */
struct mig_cred *mig_cred_from_tty(const char *prompt, const char **err);

/*
 * Read the first line of the file at path (a master password that serve keeps on disk).
 * The file must be a regular file owned by this process's user that no other user may
 * read or write (no group or other permission bits): a password readable by others is
 * refused rather than used. NULL with *err (allocated, naming the file, never its content).
 */
struct mig_cred *mig_cred_from_file(const char *path, char **err);

/* A credential holding a copy of s (tests, and the API's request bodies). */
struct mig_cred *mig_cred_from_string(const char *s, size_t len);

/* Wipe and free; NULL is fine. */
void mig_cred_free(struct mig_cred *c);

/*
 * Parse the N of --password-fd N: a descriptor number that is open, not 0-2 unless it is
 * standard input (0). -1 with *err when unusable.
 */
int mig_cred_parse_fd(const char *arg, const char **err);

#endif
