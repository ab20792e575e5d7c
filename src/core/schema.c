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

	/*
	 * 2: the key directory. One row per published copy (one address of one key). The DNS
	 * owner names and the WKD path are computed once at publication and kept, so that
	 * the triggers can mark what needs reconciling whatever deletes a row (unpublish,
	 * expiry, or an account deleted with its keys by ON DELETE CASCADE).
	 * keydir_pending: names whose published state must be made equal to the store;
	 * rrtype 61 OPENPGPKEY or 53 SMIMEA at owner, or 0 for the WKD file owner =
	 * "domain/hash". gen changes with every new mark, so a reconciler only clears a mark
	 * it has acted on.
	 */
	"CREATE TABLE keydir_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  addr TEXT NOT NULL COLLATE NOCASE,"		/* as in the key's user ID / certificate */
	"  kind TEXT NOT NULL,"				/* openpgp, smime */
	"  fingerprint TEXT NOT NULL,"
	"  algorithm TEXT NOT NULL,"
	"  bits INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"			/* 0: never */
	"  published INTEGER NOT NULL,"
	"  data BLOB NOT NULL,"				/* minimised key / DER certificate */
	"  original BLOB,"				/* the upload, only with keep_original */
	"  rrtype INTEGER NOT NULL,"
	"  owner TEXT NOT NULL,"			/* lower-case, no trailing dot */
	"  owner_lc TEXT NOT NULL DEFAULT '',"		/* lower-cased local-part's name, or '' */
	"  wkd_domain TEXT NOT NULL DEFAULT '',"	/* '' for S/MIME */
	"  wkd_hash TEXT NOT NULL DEFAULT '',"
	"  UNIQUE (addr, kind, fingerprint));"
	"CREATE INDEX keydir_keys_account ON keydir_keys(account_id);"
	"CREATE INDEX keydir_keys_owner ON keydir_keys(owner, rrtype);"
	"CREATE INDEX keydir_keys_owner_lc ON keydir_keys(owner_lc, rrtype);"
	"CREATE INDEX keydir_keys_wkd ON keydir_keys(wkd_domain, wkd_hash);"
	"CREATE TABLE keydir_pending ("
	"  owner TEXT NOT NULL,"
	"  rrtype INTEGER NOT NULL,"
	"  gen INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT,"
	"  PRIMARY KEY (owner, rrtype));"
	"CREATE TRIGGER keydir_keys_added AFTER INSERT ON keydir_keys BEGIN"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    VALUES (NEW.owner, NEW.rrtype, random());"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    SELECT NEW.owner_lc, NEW.rrtype, random() WHERE NEW.owner_lc <> '';"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    SELECT NEW.wkd_domain || '/' || NEW.wkd_hash, 0, random() WHERE NEW.wkd_hash <> '';"
	"END;"
	"CREATE TRIGGER keydir_keys_removed AFTER DELETE ON keydir_keys BEGIN"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    VALUES (OLD.owner, OLD.rrtype, random());"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    SELECT OLD.owner_lc, OLD.rrtype, random() WHERE OLD.owner_lc <> '';"
	"  INSERT OR REPLACE INTO keydir_pending(owner, rrtype, gen)"
	"    SELECT OLD.wkd_domain || '/' || OLD.wkd_hash, 0, random() WHERE OLD.wkd_hash <> '';"
	"END;",
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
