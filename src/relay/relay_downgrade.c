/*
 * relay_downgrade.c - the downgrade memory (see relay_downgrade.h): the decision as pure
 * functions, the tls_history table, and the hook the SMTP client calls before MAIL.
 *
 * The hook reads one row per new connection that reaches MAIL, on the event loop, as the
 * scheduler writes each recipient's result: a single indexed statement on the relay's own
 * connection, next to the network I/O of a whole SMTP transaction. It writes the row back
 * only when something changed or its dates are DG_REFRESH old, so a busy destination costs
 * no write per connection. A database error never stops mail: it is logged and the
 * connection goes on as if nothing were remembered.
 */
#include "relay_downgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "db.h"
#include "log.h"
#include "opmail.h"
#include "relay_mta_priv.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

const char *downgrade_verdict_name(enum dg_verdict v)
{
	static const char *const names[] = { "send", "defer_first", "defer", "send_expired" };

	return (unsigned)v < 4 ? names[v] : "unknown";
}

bool downgrade_sight_good(const struct dg_sight *s)
{
	return s->tls && (s->cert_valid || s->dane || s->mta_sts);
}

void downgrade_describe(const struct dg_sight *s, char *out, size_t len)
{
	if (!s->tls)
		snprintf(out, len, "no TLS (STARTTLS not offered or not usable)");
	else if (!downgrade_sight_good(s))
		snprintf(out, len, "%s with a certificate not valid for the MX name%s%s",
			 s->version[0] ? s->version : "TLS", s->cert_error[0] ? ": " : "",
			 s->cert_error);
	else
		snprintf(out, len, "none");
}

enum dg_verdict downgrade_decide(const struct dg_record *rec, const struct dg_sight *s,
				 bool guarantee, int64_t remember, int64_t defer_for, int64_t now)
{
	if (downgrade_sight_good(s) || guarantee || rec == NULL || remember <= 0)
		return DG_SEND;
	if (rec->last_good <= 0 || now - rec->last_good > remember)
		return DG_SEND;
	if (rec->downgrade_since <= 0)
		return DG_DEFER_FIRST;
	if (now - rec->downgrade_since < defer_for)
		return DG_DEFER;
	return DG_SEND_EXPIRED;
}

/* Copy what s shows into rec. */
static void downgrade_copy_sight(struct dg_record *rec, const struct dg_sight *s,
				 const char *mx, int64_t now)
{
	snprintf(rec->mx, sizeof(rec->mx), "%s", mx ? mx : "");
	snprintf(rec->version, sizeof(rec->version), "%s", s->tls ? s->version : "");
	rec->cert_valid = s->tls && s->cert_valid;
	rec->dane = s->tls && s->dane;
	rec->mta_sts = s->tls && s->mta_sts;
	rec->last_seen = now;
}

void downgrade_update(struct dg_record *rec, const struct dg_sight *s, enum dg_verdict v,
		      const char *mx, int64_t now)
{
	switch (v) {
	case DG_DEFER_FIRST:
		/* keep what was last good on record: it is what the next connection is held to */
		rec->last_seen = now;
		rec->downgrade_since = now;
		downgrade_describe(s, rec->what, sizeof(rec->what));
		return;
	case DG_DEFER:
		rec->last_seen = now;
		return;
	case DG_SEND_EXPIRED:
		/* the operator had defer_for to act: from now on the destination is what it shows */
		downgrade_copy_sight(rec, s, mx, now);
		rec->last_good = 0;
		rec->downgrade_since = 0;
		return;
	case DG_SEND:
		downgrade_copy_sight(rec, s, mx, now);
		if (downgrade_sight_good(s)) {
			rec->last_good = now;
			rec->downgrade_since = 0;
			rec->alerted = 0;
		}
		return;
	}
}

bool downgrade_changed(const struct dg_record *stored, const struct dg_record *rec,
		       int64_t now)
{
	if (stored == NULL || now - stored->last_seen >= DG_REFRESH)
		return true;
	return strcmp(stored->mx, rec->mx) != 0 || strcmp(stored->version, rec->version) != 0 ||
	       stored->cert_valid != rec->cert_valid || stored->dane != rec->dane ||
	       stored->mta_sts != rec->mta_sts || (stored->last_good == 0) != (rec->last_good == 0) ||
	       stored->downgrade_since != rec->downgrade_since ||
	       strcmp(stored->what, rec->what) != 0 || stored->alerted != rec->alerted;
}

/* ---- storage ------------------------------------------------------------------------- */

int downgrade_load(struct db *db, const char *domain, struct dg_record *rec)
{
	struct db_stmt *st = db_prepare_cached(db,
		"SELECT mx_host, last_seen, tls_version, cert_valid, dane, mta_sts, last_good,"
		" downgrade_since, downgrade_what, alerted FROM tls_history WHERE domain = ?");
	int rc;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->domain, sizeof(rec->domain), "%s", domain);
	db_bind_text(st, 1, domain);
	rc = st ? db_step(db, st) : -1;
	if (rc == DB_ROW) {
		snprintf(rec->mx, sizeof(rec->mx), "%s", db_col_text(st, 0));
		rec->last_seen = db_col_int(st, 1);
		snprintf(rec->version, sizeof(rec->version), "%s", db_col_text(st, 2));
		rec->cert_valid = db_col_int(st, 3) != 0;
		rec->dane = db_col_int(st, 4) != 0;
		rec->mta_sts = db_col_int(st, 5) != 0;
		rec->last_good = db_col_int(st, 6);
		rec->downgrade_since = db_col_int(st, 7);
		snprintf(rec->what, sizeof(rec->what), "%s", db_col_text(st, 8));
		rec->alerted = db_col_int(st, 9);
	}
	db_release(db, st);
	return rc == DB_ROW ? 1 : rc == DB_DONE ? 0 : -1;
}

int downgrade_store(struct db *db, const struct dg_record *rec)
{
	struct db_stmt *st = db_prepare_cached(db,
		"INSERT INTO tls_history (domain, mx_host, last_seen, tls_version, cert_valid, dane,"
		" mta_sts, last_good, downgrade_since, downgrade_what, alerted)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
		" ON CONFLICT (domain) DO UPDATE SET mx_host = ?2, last_seen = ?3,"
		" tls_version = ?4, cert_valid = ?5, dane = ?6, mta_sts = ?7, last_good = ?8,"
		" downgrade_since = ?9, downgrade_what = ?10, alerted = ?11");
	int rc;

	db_bind_text(st, 1, rec->domain);
	db_bind_text(st, 2, rec->mx);
	db_bind_int(st, 3, rec->last_seen);
	db_bind_text(st, 4, rec->version);
	db_bind_int(st, 5, rec->cert_valid);
	db_bind_int(st, 6, rec->dane);
	db_bind_int(st, 7, rec->mta_sts);
	db_bind_int(st, 8, rec->last_good);
	db_bind_int(st, 9, rec->downgrade_since);
	db_bind_text(st, 10, rec->what);
	db_bind_int(st, 11, rec->alerted);
	rc = st ? db_step_done(db, st) : -1;
	db_release(db, st);
	return rc == DB_DONE ? 0 : -1;
}

bool downgrade_claim(struct db *db, const struct dg_record *rec)
{
	struct db_stmt *st = db_prepare_cached(db,
		"UPDATE tls_history SET downgrade_since = ?1, downgrade_what = ?2, alerted = ?1,"
		" last_seen = ?1 WHERE domain = ?3 AND downgrade_since = 0");
	int rc;

	db_bind_int(st, 1, rec->downgrade_since);
	db_bind_text(st, 2, rec->what);
	db_bind_text(st, 3, rec->domain);
	rc = st ? db_step_done(db, st) : -1;
	db_release(db, st);
	return rc == DB_DONE && db_changes(db) == 1;
}

int downgrade_forget(struct db *db, const char *domain)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM tls_history WHERE domain = ?");
	int rc;

	db_bind_text(st, 1, domain);
	rc = st ? db_step_done(db, st) : -1;
	db_finalize(st);
	if (rc != DB_DONE)
		return -1;
	return db_changes(db) > 0 ? 1 : 0;
}

/* ---- the relay's hook ---------------------------------------------------------------- */

/* What m's connection shows now. */
static void downgrade_sight_of(const struct mta *m, struct dg_sight *s)
{
	const struct tls_info *t = &m->conn.tinfo;

	memset(s, 0, sizeof(*s));
	s->tls = m->conn.tls;
	if (!s->tls)
		return;
	snprintf(s->version, sizeof(s->version), "%s", t->version);
	s->cert_valid = t->webpki_valid;
	s->dane = t->dane == TLS_DANE_RESULT_PASS;
	s->mta_sts = mta_sts_enforced(m);
	snprintf(s->cert_error, sizeof(s->cert_error), "%s", t->webpki_error);
}

/* The operator's mail about a new downgrade: to every address of [downgrade] alert_to. */
static void downgrade_mail(struct relay *relay, const struct dg_record *rec, const char *mx,
			   int64_t defer_for)
{
	const struct pw_config *cfg = relay->cfg;
	char *id, *subject, last[64];
	time_t good = (time_t)rec->last_good;
	struct tm tm;
	struct buf b;

	if (cfg->downgrade.alert_to == NULL || cfg->downgrade.alert_to[0] == '\0')
		return;
	gmtime_r(&good, &tm);
	strftime(last, sizeof(last), "%Y-%m-%d %H:%M:%S UTC", &tm);
	subject = xasprintf("TLS downgrade at %s", rec->domain);
	buf_init(&b, 0);
	opmail_header(&b, cfg->server.hostname, "relay", cfg->downgrade.alert_to, subject,
		      "downgrade");
	buf_addf(&b, "The mail servers of %s offered valid TLS until %s (%s).\r\n"
		 "Now %s shows: %s.\r\n\r\n"
		 "This is what an attacker between this relay and %s would cause, or a\r\n"
		 "misconfiguration at the receiver. Mail to %s is deferred for %lld seconds\r\n"
		 "from now; after that it goes out as each sender's policy allows (senders\r\n"
		 "without the TLS-sending guarantee: in plaintext).\r\n\r\n"
		 "See: postwarden tls-history %s\r\n"
		 "Once the receiver is known to be fine: postwarden tls-history forget %s\r\n",
		 rec->domain, last, rec->version[0] ? rec->version : "TLS", mx, rec->what,
		 rec->domain, rec->domain, (long long)defer_for, rec->domain, rec->domain);
	id = queue_inject_to(relay->queue, cfg->downgrade.alert_to, b.data, b.len);
	log_info("event=tls_downgrade_alert domain=%s to=\"%s\" id=%s queued=%s", rec->domain,
		 cfg->downgrade.alert_to, id ? id : "none", id ? "yes" : "no");
	free(id);
	free(subject);
	buf_free(&b);
}

/* A new downgrade: claim it (once over every session and node), log, count, mail. */
static void downgrade_alert(struct mta *m, struct dg_record *rec, const char *mx)
{
	struct relay *relay = m->relay;

	if (!downgrade_claim(relay->db, rec))
		return;		/* another session saw it first and told the operator */
	log_warn("event=tls_downgrade domain=%s mx=%s last_good=%lld was=\"%s\" now=\"%s\" "
		 "defer_for=%lld", rec->domain, mx, (long long)rec->last_good,
		 rec->version[0] ? rec->version : "TLS", rec->what,
		 (long long)relay->cfg->downgrade.defer_for);
	stats_tls_downgrade();
	downgrade_mail(relay, rec, mx, relay->cfg->downgrade.defer_for);
}

bool mta_downgrade_check(struct mta *m)
{
	const struct downgrade_conf *c = &m->relay->cfg->downgrade;
	const struct conf_hostport *nr = &m->relay->cfg->relay.notify_relay;
	struct mta_host *h = mta_host(m);
	struct dg_record rec, stored;
	struct dg_sight s;
	enum dg_verdict v;
	int64_t now = time(NULL);
	char domain[DG_NAME_MAX], *t;
	int found;

	if (m->probe || m->reused || h == NULL || m->relay->db == NULL)
		return true;
	if (m->job->notification && nr->host != NULL && nr->host[0] != '\0')
		return true;	/* the notification relay is not the destination's MX */
	snprintf(domain, sizeof(domain), "%s", m->job->domain);
	str_lower(domain);
	downgrade_sight_of(m, &s);
	found = downgrade_load(m->relay->db, domain, &rec);
	if (found < 0) {
		log_error("event=tls_history_error domain=%s error=\"%s\"", domain,
			  db_errmsg(m->relay->db));
		return true;
	}
	v = downgrade_decide(found ? &rec : NULL, &s, m->guarantee, c->remember, c->defer_for,
			     now);
	/* a guarantee session never goes plaintext: only its good sightings are kept */
	if (m->guarantee && !downgrade_sight_good(&s))
		return true;
	stored = rec;
	downgrade_update(&rec, &s, v, h->name, now);
	if (v == DG_DEFER_FIRST)
		downgrade_alert(m, &rec, h->name);
	else if (downgrade_changed(found ? &stored : NULL, &rec, now) &&
		 downgrade_store(m->relay->db, &rec) < 0)
		log_error("event=tls_history_error domain=%s error=\"%s\"", domain,
			  db_errmsg(m->relay->db));
	if (v == DG_SEND_EXPIRED)
		log_info("event=tls_downgrade_expired id=%s domain=%s mx=%s", m->job->msg_id,
			 domain, h->name);
	if (v != DG_DEFER_FIRST && v != DG_DEFER)
		return true;
	t = xasprintf("%s offered valid TLS before and now shows %s: deferred as a possible "
		      "downgrade attack (postwarden tls-history %s)", h->name, rec.what, domain);
	mta_host_failed(m, s.tls ? REASON_TLS_HANDSHAKE : REASON_NO_STARTTLS, t);
	free(t);
	return false;
}
