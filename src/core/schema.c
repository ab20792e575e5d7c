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
#include <string.h>
#include <sys/stat.h>

#include "xmalloc.h"

/*
 * 3: several nodes. Each message row names the node whose spool holds it ('' in rows
 * from before: the node that opens the database first adopts them). nodes: one row per
 * node, its heartbeat. leases: work that runs once in the whole installation is done by
 * the node holding its lease until expires. Portable SQL: the same text for both engines.
 */
#define SCHEMA_V3_COMMON \
	"ALTER TABLE messages ADD COLUMN node TEXT NOT NULL DEFAULT '';" \
	"CREATE INDEX messages_node ON messages(node);" \
	"CREATE TABLE nodes (" \
	"  name TEXT PRIMARY KEY," \
	"  started BIGINT NOT NULL," \
	"  heartbeat BIGINT NOT NULL," \
	"  pid BIGINT NOT NULL DEFAULT 0," \
	"  version TEXT NOT NULL DEFAULT '');" \
	"CREATE TABLE leases (" \
	"  name TEXT PRIMARY KEY," \
	"  holder TEXT NOT NULL," \
	"  expires BIGINT NOT NULL);"

/*
 * 4: the Certificate Transparency monitor. ct_logs: per log, the last verified tree head
 * (size, root, the signed head as received) and how far its entries are checked
 * (next_index, with the compact range of those leaves so that a restart resumes without
 * reading them again). ct_findings: one row per certificate for a watched name, a
 * certificate and its precertificate being one (identity: the hash of their common TBS);
 * verdict says whether it was expected and, if not, why. ct_sightings: where each was
 * seen, one row per log entry, so an entry read twice (a restart) is never a second
 * finding. ct_alerts: misbehaviour of logs and the monitor's health, with evidence.
 * Everything a batch of entries changes is written in one transaction with next_index.
 * ID_COLUMN and BLOB_TYPE are the engine's own spellings.
 */
#define SCHEMA_V4(ID_COLUMN, BLOB_TYPE) \
	"CREATE TABLE ct_logs (" \
	"  log_id TEXT PRIMARY KEY," \
	"  url TEXT NOT NULL," \
	"  api TEXT NOT NULL," \
	"  tree_size BIGINT NOT NULL DEFAULT 0," \
	"  root_hash " BLOB_TYPE "," \
	"  sth_timestamp BIGINT NOT NULL DEFAULT 0," \
	"  sth " BLOB_TYPE "," \
	"  next_index BIGINT NOT NULL DEFAULT 0," \
	"  range_state " BLOB_TYPE "," \
	"  last_success BIGINT NOT NULL DEFAULT 0," \
	"  last_error TEXT," \
	"  updated BIGINT NOT NULL DEFAULT 0);" \
	"CREATE TABLE ct_findings (" \
	"  id " ID_COLUMN "," \
	"  identity " BLOB_TYPE " NOT NULL UNIQUE," \
	"  names TEXT NOT NULL," \
	"  issuer TEXT NOT NULL," \
	"  serial TEXT NOT NULL," \
	"  spki_sha256 TEXT NOT NULL," \
	"  not_before BIGINT NOT NULL," \
	"  not_after BIGINT NOT NULL," \
	"  verdict TEXT NOT NULL," \
	"  reason TEXT NOT NULL," \
	"  first_seen BIGINT NOT NULL," \
	"  acked BIGINT," \
	"  alerted BIGINT);" \
	"CREATE TABLE ct_sightings (" \
	"  log_id TEXT NOT NULL," \
	"  idx BIGINT NOT NULL," \
	"  finding_id BIGINT NOT NULL REFERENCES ct_findings(id) ON DELETE CASCADE," \
	"  precert INTEGER NOT NULL," \
	"  seen BIGINT NOT NULL," \
	"  PRIMARY KEY (log_id, idx));" \
	"CREATE INDEX ct_sightings_finding ON ct_sightings(finding_id);" \
	"CREATE TABLE ct_alerts (" \
	"  id " ID_COLUMN "," \
	"  kind TEXT NOT NULL," \
	"  log_id TEXT," \
	"  created BIGINT NOT NULL," \
	"  message TEXT NOT NULL," \
	"  evidence TEXT," \
	"  alerted BIGINT);"

/*
 * 5: what the CAA check and allowed_issuers judged a finding by: the SHA-256 of the issuer's
 * key (hex; '' when the log did not say) and the outcome of the CAA check (allowed,
 * no_caa, not_allowed, issuer_unknown, not_checked; '' for findings stored before).
 * The same text for both engines.
 */
#define SCHEMA_V5 \
	"ALTER TABLE ct_findings ADD COLUMN issuer_key_sha256 TEXT NOT NULL DEFAULT '';" \
	"ALTER TABLE ct_findings ADD COLUMN caa TEXT NOT NULL DEFAULT '';"

/*
 * 6: delivery of the CT monitor's alerts. ct_deliveries: one row per finding or alert
 * (item 'finding' or 'alert', item_id its id) and channel ('mail', 'webhook', 'hook'):
 * attempts so far and when the next is due (exponential backoff), the node holding it
 * while a delivery is in flight (claimed_by, until claim_until: a node that dies with a
 * claim leaves the row to another after that), done when it was delivered. So a channel
 * that fails is retried alone, by whichever node, and no two nodes deliver one twice.
 * ct_alerts.resolved: a health alert (a stale log, a log list that cannot be refreshed, a
 * growing backlog) is one episode from the row's creation until resolved; a new episode
 * is a new row. Rows already mailed before this version count as delivered by mail.
 */
#define SCHEMA_V6_COMMON \
	"CREATE TABLE ct_deliveries (" \
	"  item TEXT NOT NULL," \
	"  item_id BIGINT NOT NULL," \
	"  channel TEXT NOT NULL," \
	"  created BIGINT NOT NULL," \
	"  attempts INTEGER NOT NULL DEFAULT 0," \
	"  next_attempt BIGINT NOT NULL DEFAULT 0," \
	"  claimed_by TEXT," \
	"  claim_until BIGINT," \
	"  done BIGINT," \
	"  last_error TEXT," \
	"  PRIMARY KEY (item, item_id, channel));" \
	"CREATE INDEX ct_deliveries_due ON ct_deliveries(channel, done, next_attempt);" \
	"ALTER TABLE ct_alerts ADD COLUMN resolved BIGINT;" \
	"INSERT INTO ct_deliveries (item, item_id, channel, created, attempts, done) " \
	"  SELECT 'finding', id, 'mail', alerted, 1, alerted FROM ct_findings " \
	"  WHERE alerted IS NOT NULL;" \
	"INSERT INTO ct_deliveries (item, item_id, channel, created, attempts, done) " \
	"  SELECT 'alert', id, 'mail', alerted, 1, alerted FROM ct_alerts " \
	"  WHERE alerted IS NOT NULL;"

/*
 * 7: migration jobs (postwarden migrate). A job is known by its id and the destination
 * account; it never records the source server, the source user name or any credential.
 * mig_folders: per job and source folder (its name, which the user owns), the UIDVALIDITY
 * and the highest UID copied, so a second run copies only what is missing; counts,
 * bytes, timings and the last error of each folder. The same text for both engines.
 */
#define SCHEMA_V7(idtype) \
	"CREATE TABLE mig_jobs (" \
	"  id " idtype "," \
	"  kind TEXT NOT NULL," \
	"  dest_user TEXT NOT NULL," \
	"  state TEXT NOT NULL DEFAULT 'running'," \
	"  created BIGINT NOT NULL," \
	"  started BIGINT NOT NULL DEFAULT 0," \
	"  finished BIGINT NOT NULL DEFAULT 0," \
	"  messages BIGINT NOT NULL DEFAULT 0," \
	"  bytes BIGINT NOT NULL DEFAULT 0," \
	"  failed BIGINT NOT NULL DEFAULT 0," \
	"  error TEXT NOT NULL DEFAULT '');" \
	"CREATE TABLE mig_folders (" \
	"  job_id BIGINT NOT NULL REFERENCES mig_jobs(id) ON DELETE CASCADE," \
	"  folder TEXT NOT NULL," \
	"  dest_folder TEXT NOT NULL DEFAULT ''," \
	"  uidvalidity BIGINT NOT NULL DEFAULT 0," \
	"  last_uid BIGINT NOT NULL DEFAULT 0," \
	"  messages BIGINT NOT NULL DEFAULT 0," \
	"  bytes BIGINT NOT NULL DEFAULT 0," \
	"  failed BIGINT NOT NULL DEFAULT 0," \
	"  started BIGINT NOT NULL DEFAULT 0," \
	"  finished BIGINT NOT NULL DEFAULT 0," \
	"  error TEXT NOT NULL DEFAULT ''," \
	"  PRIMARY KEY (job_id, folder));"

/*
 * 8: migration jobs run by serve's API. node: the node running the job ('' when none);
 * heartbeat: when that node last wrote the job's progress, so that a job whose node died
 * shows as interrupted on every node sharing the database; the live counters (folders,
 * messages and bytes done and to do) for progress read from any node; cancel: set by
 * DELETE on any node, seen by the running node at its next progress write.
 */
#define SCHEMA_V8 \
	"ALTER TABLE mig_jobs ADD COLUMN node TEXT NOT NULL DEFAULT '';" \
	"ALTER TABLE mig_jobs ADD COLUMN heartbeat BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN folders_total BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN folders_done BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN messages_total BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN messages_done BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN bytes_total BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN bytes_done BIGINT NOT NULL DEFAULT 0;" \
	"ALTER TABLE mig_jobs ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0;" \
	"CREATE INDEX mig_jobs_user ON mig_jobs(dest_user);"

/*
 * 9: the account API. acct_sessions: one row per signed-in session, keyed by the SHA-256
 * (hex) of its random id, never the id itself, so a copy of the database signs nobody in;
 * created and last_used give the absolute and idle timeouts; csrf is the token every
 * change must carry. acct_login_failures: one row per failed sign-in and kind ('address'
 * or 'client'), counted over [account] login_window by every node sharing the database.
 */
#define SCHEMA_V9 \
	"CREATE TABLE acct_sessions (" \
	"  sid_hash TEXT PRIMARY KEY," \
	"  address TEXT NOT NULL," \
	"  csrf TEXT NOT NULL," \
	"  method TEXT NOT NULL," \
	"  created BIGINT NOT NULL," \
	"  last_used BIGINT NOT NULL);" \
	"CREATE INDEX acct_sessions_used ON acct_sessions(last_used);" \
	"CREATE TABLE acct_login_failures (" \
	"  kind TEXT NOT NULL," \
	"  who TEXT NOT NULL," \
	"  at BIGINT NOT NULL);" \
	"CREATE INDEX acct_login_failures_who ON acct_login_failures(kind, who, at);"

/*
 * Version 10: what the relay learns about receivers' TLS, in parts so each stays with its
 * feature: MTA-STS policies by domain (RFC 8461), the day's TLS outcome counts for the
 * reports (RFC 8460) with the days already reported, the downgrade memory, and a message's
 * REQUIRETLS flag.
 */
#define SCHEMA_V10_STS \
	"CREATE TABLE mta_sts_policies (" \
	"  domain TEXT PRIMARY KEY," \
	"  id TEXT NOT NULL," \
	"  mode TEXT NOT NULL," \
	"  mx TEXT NOT NULL," \
	"  max_age BIGINT NOT NULL," \
	"  policy TEXT NOT NULL," \
	"  fetched BIGINT NOT NULL," \
	"  expires BIGINT NOT NULL," \
	"  last_attempt BIGINT NOT NULL DEFAULT 0," \
	"  last_error TEXT);"

#define SCHEMA_V10_TLSRPT \
	"CREATE TABLE tlsrpt_counts (" \
	"  day TEXT NOT NULL," \
	"  policy_domain TEXT NOT NULL," \
	"  policy_type TEXT NOT NULL," \
	"  policy_string TEXT NOT NULL DEFAULT ''," \
	"  mx_host TEXT NOT NULL DEFAULT ''," \
	"  result_type TEXT NOT NULL DEFAULT ''," \
	"  sending_ip TEXT NOT NULL DEFAULT ''," \
	"  receiving_ip TEXT NOT NULL DEFAULT ''," \
	"  count BIGINT NOT NULL DEFAULT 0," \
	"  PRIMARY KEY (day, policy_domain, policy_type, mx_host, result_type, sending_ip," \
	"               receiving_ip));" \
	"CREATE TABLE tlsrpt_sent (" \
	"  day TEXT NOT NULL," \
	"  policy_domain TEXT NOT NULL," \
	"  sent BIGINT NOT NULL," \
	"  result TEXT NOT NULL DEFAULT ''," \
	"  PRIMARY KEY (day, policy_domain));"

#define SCHEMA_V10_HISTORY \
	"CREATE TABLE tls_history (" \
	"  domain TEXT PRIMARY KEY," \
	"  mx_host TEXT NOT NULL DEFAULT ''," \
	"  last_seen BIGINT NOT NULL DEFAULT 0," \
	"  tls_version TEXT NOT NULL DEFAULT ''," \
	"  cert_valid INTEGER NOT NULL DEFAULT 0," \
	"  dane INTEGER NOT NULL DEFAULT 0," \
	"  mta_sts INTEGER NOT NULL DEFAULT 0," \
	"  last_good BIGINT NOT NULL DEFAULT 0," \
	"  downgrade_since BIGINT NOT NULL DEFAULT 0," \
	"  downgrade_what TEXT NOT NULL DEFAULT ''," \
	"  alerted BIGINT NOT NULL DEFAULT 0);"

/* A message's REQUIRETLS (RFC 8689) goes with it from the listener to every later hop. */
#define SCHEMA_V10_REQUIRETLS \
	"ALTER TABLE messages ADD COLUMN requiretls INTEGER NOT NULL DEFAULT 0;"

#define SCHEMA_V10 SCHEMA_V10_STS SCHEMA_V10_TLSRPT SCHEMA_V10_HISTORY SCHEMA_V10_REQUIRETLS

/*
 * The users' notifications (GET /v1/notifications): a row each time a recipient becomes held
 * or bounced, written by a trigger so that it outlives the message in the queue; the account
 * API deletes rows older than 90 days.
 */
#define SCHEMA_V10_NOTICES \
	"CREATE TABLE acct_notices (" \
	"  msg_id TEXT NOT NULL," \
	"  recipient TEXT NOT NULL," \
	"  kind TEXT NOT NULL," \
	"  sender TEXT NOT NULL," \
	"  reason TEXT NOT NULL," \
	"  received BIGINT NOT NULL," \
	"  at BIGINT NOT NULL," \
	"  PRIMARY KEY (msg_id, recipient, kind));" \
	"CREATE INDEX acct_notices_sender ON acct_notices(sender, at);"

#define SCHEMA_V10_NOTICES_SQLITE \
	SCHEMA_V10_NOTICES \
	"CREATE TRIGGER recipients_notice AFTER UPDATE OF state ON recipients" \
	"  WHEN NEW.state IN ('held', 'bounced') AND OLD.state <> NEW.state BEGIN" \
	"  INSERT OR IGNORE INTO acct_notices" \
	"    SELECT NEW.msg_id, NEW.addr, NEW.state, lower(m.sender), COALESCE(NEW.reason, '')," \
	"           m.received, CAST(strftime('%s', 'now') AS INTEGER)" \
	"    FROM messages m WHERE m.id = NEW.msg_id;" \
	"END;"

#define SCHEMA_V10_NOTICES_PG \
	SCHEMA_V10_NOTICES \
	"CREATE FUNCTION recipients_notice() RETURNS trigger LANGUAGE plpgsql AS $$" \
	"BEGIN" \
	"  INSERT INTO acct_notices" \
	"    SELECT NEW.msg_id, NEW.addr, NEW.state, lower(m.sender), COALESCE(NEW.reason, '')," \
	"           m.received, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)" \
	"    FROM messages m WHERE m.id = NEW.msg_id ON CONFLICT DO NOTHING;" \
	"  RETURN NULL;" \
	"END $$;" \
	"CREATE TRIGGER recipients_notice AFTER UPDATE OF state ON recipients FOR EACH ROW" \
	"  WHEN (NEW.state IN ('held', 'bounced') AND OLD.state IS DISTINCT FROM NEW.state)" \
	"  EXECUTE FUNCTION recipients_notice();"

static const char *const sqlite_migrations[] = {
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

	SCHEMA_V3_COMMON,

	SCHEMA_V4("INTEGER PRIMARY KEY", "BLOB"),

	SCHEMA_V5,

	SCHEMA_V6_COMMON,

	SCHEMA_V7("INTEGER PRIMARY KEY"),

	SCHEMA_V8,

	SCHEMA_V9,

	SCHEMA_V10 SCHEMA_V10_NOTICES_SQLITE,
};

/*
 * The same schema for PostgreSQL, migration for migration: citext where SQLite has
 * COLLATE NOCASE, bigint for times and ids, bytea for blobs, and the triggers of
 * migration 2 as one PL/pgSQL function. A sequence gives keydir_pending its generations.
 */
static const char *const postgres_migrations[] = {
	/* 1: accounts and the queue */
	"CREATE EXTENSION IF NOT EXISTS citext;"
	"CREATE TABLE accounts ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  primary_addr citext NOT NULL UNIQUE,"
	"  guarantee integer NOT NULL DEFAULT 0,"
	"  guarantee_off_until bigint NOT NULL DEFAULT 0,"
	"  created bigint NOT NULL);"
	"CREATE TABLE addresses ("
	"  addr citext PRIMARY KEY,"
	"  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  is_primary integer NOT NULL);"
	"CREATE INDEX addresses_account ON addresses(account_id);"
	"CREATE TABLE messages ("
	"  id text PRIMARY KEY,"
	"  sender text NOT NULL,"
	"  size bigint NOT NULL,"
	"  received bigint NOT NULL,"
	"  envid text,"
	"  ret text,"
	"  body text,"
	"  smtputf8 integer NOT NULL DEFAULT 0,"
	"  guarantee integer NOT NULL DEFAULT 0,"
	"  tls_required_no integer NOT NULL DEFAULT 0,"
	"  notification integer NOT NULL DEFAULT 0);"
	"CREATE TABLE recipients ("
	"  msg_id text NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	"  idx integer NOT NULL,"
	"  addr text NOT NULL,"
	"  orcpt text,"
	"  notify text,"
	"  state text NOT NULL DEFAULT 'queued',"
	"  attempts integer NOT NULL DEFAULT 0,"
	"  next_attempt bigint NOT NULL DEFAULT 0,"
	"  first_tls_failure bigint,"
	"  held_until bigint,"
	"  release integer NOT NULL DEFAULT 0,"
	"  mx text,"
	"  status text,"
	"  reason text,"
	"  PRIMARY KEY (msg_id, idx));"
	"CREATE INDEX recipients_due ON recipients(state, next_attempt);",

	/* 2: the key directory (see the SQLite text for what the columns mean) */
	"CREATE TABLE keydir_keys ("
	"  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	"  account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  addr citext NOT NULL,"
	"  kind text NOT NULL,"
	"  fingerprint text NOT NULL,"
	"  algorithm text NOT NULL,"
	"  bits integer NOT NULL,"
	"  created bigint NOT NULL,"
	"  expires bigint NOT NULL,"
	"  published bigint NOT NULL,"
	"  data bytea NOT NULL,"
	"  original bytea,"
	"  rrtype integer NOT NULL,"
	"  owner text NOT NULL,"
	"  owner_lc text NOT NULL DEFAULT '',"
	"  wkd_domain text NOT NULL DEFAULT '',"
	"  wkd_hash text NOT NULL DEFAULT '',"
	"  UNIQUE (addr, kind, fingerprint));"
	"CREATE INDEX keydir_keys_account ON keydir_keys(account_id);"
	"CREATE INDEX keydir_keys_owner ON keydir_keys(owner, rrtype);"
	"CREATE INDEX keydir_keys_owner_lc ON keydir_keys(owner_lc, rrtype);"
	"CREATE INDEX keydir_keys_wkd ON keydir_keys(wkd_domain, wkd_hash);"
	"CREATE TABLE keydir_pending ("
	"  owner text NOT NULL,"
	"  rrtype integer NOT NULL,"
	"  gen bigint NOT NULL,"
	"  attempts integer NOT NULL DEFAULT 0,"
	"  next_attempt bigint NOT NULL DEFAULT 0,"
	"  error text,"
	"  PRIMARY KEY (owner, rrtype));"
	"CREATE SEQUENCE keydir_gen;"
	/* a new mark replaces the old one whole, as SQLite's INSERT OR REPLACE does */
	"CREATE FUNCTION keydir_mark(o text, t integer) RETURNS void LANGUAGE sql AS $$"
	"  INSERT INTO keydir_pending(owner, rrtype, gen) VALUES (o, t, nextval('keydir_gen'))"
	"  ON CONFLICT (owner, rrtype) DO UPDATE SET gen = EXCLUDED.gen, attempts = 0,"
	"  next_attempt = 0, error = NULL $$;"
	"CREATE FUNCTION keydir_keys_mark() RETURNS trigger LANGUAGE plpgsql AS $$"
	"DECLARE r keydir_keys;"
	"BEGIN"
	"  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;"
	"  PERFORM keydir_mark(r.owner, r.rrtype);"
	"  IF r.owner_lc <> '' THEN PERFORM keydir_mark(r.owner_lc, r.rrtype); END IF;"
	"  IF r.wkd_hash <> '' THEN PERFORM keydir_mark(r.wkd_domain || '/' || r.wkd_hash, 0);"
	"  END IF;"
	"  RETURN NULL;"
	"END $$;"
	"CREATE TRIGGER keydir_keys_marks AFTER INSERT OR DELETE ON keydir_keys"
	"  FOR EACH ROW EXECUTE FUNCTION keydir_keys_mark();",

	SCHEMA_V3_COMMON,

	SCHEMA_V4("bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "bytea"),

	SCHEMA_V5,

	SCHEMA_V6_COMMON,

	SCHEMA_V7("bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),

	SCHEMA_V8,

	SCHEMA_V9,

	SCHEMA_V10 SCHEMA_V10_NOTICES_PG,
};

static const struct db_schema schema = {
	.sqlite = sqlite_migrations,
	.postgres = postgres_migrations,
	.n = (int)(sizeof(sqlite_migrations) / sizeof(sqlite_migrations[0])),
};

/* Both lists must have every migration. */
_Static_assert(sizeof(sqlite_migrations) == sizeof(postgres_migrations),
	       "a migration is missing for one engine");

struct db *schema_open(const struct pw_config *cfg, enum db_open_mode mode, char **err)
{
	if (strncmp(cfg->database.url, "sqlite:", 7) == 0 &&
	    mkdir(cfg->server.state_dir, 0750) < 0 && errno != EEXIST) {
		*err = xasprintf("cannot create state_dir %s", cfg->server.state_dir);
		return NULL;
	}
	return db_open(cfg->database.url, cfg->database.password_file, &schema, mode, err);
}

struct db *schema_open_url(const char *url, const char *password_file, enum db_open_mode mode,
			   char **err)
{
	return db_open(url, password_file, &schema, mode, err);
}

enum db_open_mode schema_serve_mode(const struct pw_config *cfg)
{
	/* several nodes share a PostgreSQL schema: its operator migrates it, once */
	return strncmp(cfg->database.url, "sqlite:", 7) == 0 ? DB_OPEN_MIGRATE : DB_OPEN_CHECK;
}
