/*
 * schema.c - the database schema, as a list of migrations; see schema.h.
 *
 * Addresses compare case-insensitively (COLLATE NOCASE): local-parts are case-sensitive in
 * RFC 5321, but no provider hands out "Anna" and "anna" to different people, and a user who
 * types their address differently must still find their account.
 *
 * Queue: a message's data lives in a spool file (see relay_queue.c); its envelope and each
 * recipient's delivery state live here. Recipient states: queued, deferred, held (stopped by
 * the guarantee, waiting for release), delivered, bounced.
 */
#include "schema.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "xmalloc.h"

static const char *const migrations[] = {
	/* 1: accounts and the queue */
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY,"
	"  primary_addr TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  guarantee INTEGER NOT NULL DEFAULT 0,"
	"  guarantee_off_until INTEGER NOT NULL DEFAULT 0,"	/* 'off --for': unix time */
	"  created INTEGER NOT NULL);"
	"CREATE TABLE addresses ("
	"  addr TEXT PRIMARY KEY COLLATE NOCASE,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  is_primary INTEGER NOT NULL);"
	"CREATE INDEX addresses_account ON addresses(account_id);"
	"CREATE TABLE messages ("
	"  id TEXT PRIMARY KEY,"
	"  sender TEXT NOT NULL,"			/* '' = null sender */
	"  size INTEGER NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  envid TEXT,"					/* DSN ENVID */
	"  ret TEXT,"					/* DSN RET: FULL or HDRS */
	"  body TEXT,"					/* 7BIT, 8BITMIME */
	"  smtputf8 INTEGER NOT NULL DEFAULT 0,"
	"  guarantee INTEGER NOT NULL DEFAULT 0,"	/* decided at acceptance */
	"  tls_required_no INTEGER NOT NULL DEFAULT 0,"
	"  notification INTEGER NOT NULL DEFAULT 0);"	/* one of ours: never notify about it */
	"CREATE TABLE recipients ("
	"  msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  addr TEXT NOT NULL,"
	"  orcpt TEXT,"					/* DSN ORCPT */
	"  notify TEXT,"				/* DSN NOTIFY */
	"  state TEXT NOT NULL DEFAULT 'queued',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  first_tls_failure INTEGER,"			/* for [guarantee] retry_for */
	"  held_until INTEGER,"
	"  release INTEGER NOT NULL DEFAULT 0,"		/* 1: next attempt without the guarantee */
	"  mx TEXT,"
	"  status TEXT,"				/* enhanced status code, e.g. 5.7.10 */
	"  reason TEXT,"
	"  PRIMARY KEY (msg_id, idx));"
	"CREATE INDEX recipients_due ON recipients(state, next_attempt);",
};

struct db *schema_open(const struct pw_config *cfg, char **err)
{
	char *path;
	struct db *db;

	if (mkdir(cfg->server.state_dir, 0750) < 0 && errno != EEXIST) {
		*err = xasprintf("cannot create state_dir %s", cfg->server.state_dir);
		return NULL;
	}
	path = config_state_path(cfg, "postwarden.db");
	db = db_open(path, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])), err);
	free(path);
	return db;
}
