/*
 * relay_tlsrpt.c - counting every delivery attempt's TLS outcome for the daily TLS reports
 * (RFC 8460): a small hash table in memory, keyed by day, policy domain, policy, MX host,
 * result type and addresses, added to tlsrpt_counts in batches from a timer on serve's loop
 * (and at shutdown), so that no delivery waits for a database write.
 */
#include "relay_tlsrpt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "buf.h"
#include "db.h"
#include "log.h"
#include "relay.h"
#include "relay_mta_priv.h"
#include "xmalloc.h"

static const char *const tlsrpt_names[TLSRPT_NRESULT] = {
	[TLSRPT_SUCCESS] = "",
	[TLSRPT_STARTTLS_NOT_SUPPORTED] = "starttls-not-supported",
	[TLSRPT_CERT_HOST_MISMATCH] = "certificate-host-mismatch",
	[TLSRPT_CERT_EXPIRED] = "certificate-expired",
	[TLSRPT_CERT_NOT_TRUSTED] = "certificate-not-trusted",
	[TLSRPT_VALIDATION_FAILURE] = "validation-failure",
	[TLSRPT_TLSA_INVALID] = "tlsa-invalid",
	[TLSRPT_DNSSEC_INVALID] = "dnssec-invalid",
	[TLSRPT_DANE_REQUIRED] = "dane-required",
	[TLSRPT_STS_POLICY_FETCH_ERROR] = "sts-policy-fetch-error",
	[TLSRPT_STS_POLICY_INVALID] = "sts-policy-invalid",
	[TLSRPT_STS_WEBPKI_INVALID] = "sts-webpki-invalid",
};

const char *tlsrpt_result_name(enum tlsrpt_result r)
{
	return r < TLSRPT_NRESULT ? tlsrpt_names[r] : "validation-failure";
}

enum tlsrpt_result tlsrpt_result_of(enum policy_reason r)
{
	switch (r) {
	case REASON_NO_STARTTLS:
	case REASON_STARTTLS_REFUSED:
		return TLSRPT_STARTTLS_NOT_SUPPORTED;
	case REASON_DANE_MISMATCH:
		return TLSRPT_TLSA_INVALID;
	case REASON_DNSSEC_BOGUS:
		return TLSRPT_DNSSEC_INVALID;
	case REASON_STS_NO_TLS:
		return TLSRPT_STARTTLS_NOT_SUPPORTED;
	case REASON_STS_CERT:
		return TLSRPT_CERT_NOT_TRUSTED;	/* refined by tlsrpt_cert_result */
	default:
		/* protocol, cipher, injection, other handshake failures: RFC 8460 4.3.3 */
		return TLSRPT_VALIDATION_FAILURE;
	}
}

enum tlsrpt_result tlsrpt_cert_result(const struct tls_info *ti)
{
	if (ti->webpki_valid)
		return TLSRPT_VALIDATION_FAILURE;	/* the name was fine: TLS below 1.2 */
	if (strstr(ti->webpki_error, "expired") != NULL)
		return TLSRPT_CERT_EXPIRED;
	if (strstr(ti->webpki_error, "hostname mismatch") != NULL)
		return TLSRPT_CERT_HOST_MISMATCH;
	return TLSRPT_CERT_NOT_TRUSTED;
}

void tlsrpt_day(int64_t t, char out[11])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	if (strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		snprintf(out, 11, "0000-00-00");	/* a year past 9999 */
}

/* "3 1 1 <hex>" lines of a host's TLSA records. */
static char *tlsrpt_tlsa_string(const struct mta_host *h)
{
	struct buf b;

	buf_init(&b, SIZE_MAX);
	for (size_t i = 0; i < h->ntlsa; i++) {
		const struct dns_tlsa *t = &h->tlsa[i];

		buf_addf(&b, "%s%u %u %u ", i ? "\n" : "", t->usage, t->selector, t->mtype);
		for (size_t j = 0; j < t->len; j++)
			buf_addf(&b, "%02x", t->data[j]);
	}
	buf_add(&b, "", 1);
	return buf_release(&b, NULL);
}

/* The policy as served, its lines joined by '\n' (no CR, no empty last line). */
static char *tlsrpt_sts_string(const char *text)
{
	struct buf b;

	buf_init(&b, SIZE_MAX);
	for (const char *p = text; p != NULL && *p != '\0'; p++)
		if (*p != '\r')
			buf_add(&b, p, 1);
	while (b.len > 0 && b.data[b.len - 1] == '\n')
		b.len--;
	buf_add(&b, "", 1);
	return buf_release(&b, NULL);
}

void tlsrpt_policy_of(const struct mta *m, const struct mta_host *h, enum tlsrpt_result r,
		      const char **type, char **string)
{
	bool dane = (h != NULL && (h->dane == DANE_AUTH || h->dane == DANE_TLS_ONLY)) ||
		    (m != NULL && m->conn.dane == DANE_AUTH);

	/* A BOGUS answer or an unusable TLSA set is a DANE policy failure (RFC 8460 4.3.2). */
	if (dane || r == TLSRPT_DNSSEC_INVALID || r == TLSRPT_TLSA_INVALID ||
	    r == TLSRPT_DANE_REQUIRED) {
		*type = "tlsa";
		*string = h != NULL && h->ntlsa > 0 ? tlsrpt_tlsa_string(h) : xstrdup("");
		return;
	}
	/* an MTA-STS policy in force, or one that could not be fetched (RFC 8460 4.3.2) */
	if (m != NULL && (m->sts_mode != STS_MODE_NONE || m->sts_error != NULL)) {
		*type = "sts";
		*string = tlsrpt_sts_string(m->sts_mode != STS_MODE_NONE ? m->sts.text : NULL);
		return;
	}
	*type = "no-policy-found";
	*string = xstrdup("");
}

/* ---- the table in memory ----------------------------------------------------------------- */

#define TLSRPT_BUCKETS 1024

struct tlsrpt_entry {
	struct tlsrpt_entry *next;
	char *key;			/* the identifying fields joined by '\x1f' */
	char day[11];
	char *domain, *policy_type, *policy_string, *mx_host, *sending_ip, *receiving_ip;
	enum tlsrpt_result result;
	uint64_t count;
};

struct tlsrpt {
	struct tlsrpt_entry *bucket[TLSRPT_BUCKETS];
	size_t n;
	bool full_logged;
	struct event *timer;
	struct relay *relay;		/* borrowed; NULL outside serve */
};

struct tlsrpt *tlsrpt_new(void)
{
	return xcalloc(1, sizeof(struct tlsrpt));
}

static void tlsrpt_entry_free(struct tlsrpt_entry *e)
{
	free(e->key);
	free(e->domain);
	free(e->policy_type);
	free(e->policy_string);
	free(e->mx_host);
	free(e->sending_ip);
	free(e->receiving_ip);
	free(e);
}

static void tlsrpt_clear(struct tlsrpt *t)
{
	for (size_t i = 0; i < TLSRPT_BUCKETS; i++) {
		struct tlsrpt_entry *e = t->bucket[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			tlsrpt_entry_free(e);
		}
		t->bucket[i] = NULL;
	}
	t->n = 0;
}

void tlsrpt_free(struct tlsrpt *t)
{
	if (t == NULL)
		return;
	tlsrpt_clear(t);
	if (t->timer)
		event_free(t->timer);
	free(t);
}

static uint32_t tlsrpt_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static const char *tlsrpt_s(const char *s)
{
	return s ? s : "";
}

bool tlsrpt_add(struct tlsrpt *t, const struct tlsrpt_row *row)
{
	char *key = xasprintf("%s\x1f%s\x1f%s\x1f%s\x1f%d\x1f%s\x1f%s", row->day,
			      tlsrpt_s(row->domain), tlsrpt_s(row->policy_type),
			      tlsrpt_s(row->mx_host), (int)row->result,
			      tlsrpt_s(row->sending_ip), tlsrpt_s(row->receiving_ip));
	uint32_t b = tlsrpt_hash(key) % TLSRPT_BUCKETS;
	struct tlsrpt_entry *e;

	for (e = t->bucket[b]; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			break;
	if (e != NULL) {
		free(key);
		e->count += row->count;
		/* a reused connection knows no TLSA strings: keep the ones seen */
		if (*e->policy_string == '\0' && row->policy_string && *row->policy_string) {
			free(e->policy_string);
			e->policy_string = xstrdup(row->policy_string);
		}
		return true;
	}
	if (t->n >= TLSRPT_MAX_KEYS) {
		free(key);
		return false;
	}
	e = xcalloc(1, sizeof(*e));
	e->key = key;
	memcpy(e->day, row->day, sizeof(e->day));
	e->domain = xstrdup(tlsrpt_s(row->domain));
	e->policy_type = xstrdup(tlsrpt_s(row->policy_type));
	e->policy_string = xstrdup(tlsrpt_s(row->policy_string));
	e->mx_host = xstrdup(tlsrpt_s(row->mx_host));
	e->sending_ip = xstrdup(tlsrpt_s(row->sending_ip));
	e->receiving_ip = xstrdup(tlsrpt_s(row->receiving_ip));
	e->result = row->result;
	e->count = row->count;
	e->next = t->bucket[b];
	t->bucket[b] = e;
	t->n++;
	return true;
}

size_t tlsrpt_pending(const struct tlsrpt *t)
{
	return t ? t->n : 0;
}

static const char tlsrpt_upsert[] =
	"INSERT INTO tlsrpt_counts (day, policy_domain, policy_type, policy_string, mx_host, "
	"result_type, sending_ip, receiving_ip, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
	"ON CONFLICT (day, policy_domain, policy_type, mx_host, result_type, sending_ip, "
	"receiving_ip) DO UPDATE SET count = tlsrpt_counts.count + excluded.count, "
	"policy_string = CASE WHEN excluded.policy_string <> '' THEN excluded.policy_string "
	"ELSE tlsrpt_counts.policy_string END";

int tlsrpt_flush(struct tlsrpt *t, struct db *db)
{
	struct db_stmt *st;
	bool ok;
	int rc = DB_OK;

	if (t == NULL || t->n == 0)
		return DB_OK;
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	st = db_prepare_cached(db, tlsrpt_upsert);
	ok = st != NULL;
	for (size_t i = 0; i < TLSRPT_BUCKETS && ok; i++) {
		for (struct tlsrpt_entry *e = t->bucket[i]; e != NULL && ok; e = e->next) {
			db_bind_text(st, 1, e->day);
			db_bind_text(st, 2, e->domain);
			db_bind_text(st, 3, e->policy_type);
			db_bind_text(st, 4, e->policy_string);
			db_bind_text(st, 5, e->mx_host);
			db_bind_text(st, 6, tlsrpt_result_name(e->result));
			db_bind_text(st, 7, e->sending_ip);
			db_bind_text(st, 8, e->receiving_ip);
			db_bind_int(st, 9, (int64_t)e->count);
			/* the first failure ends the batch, and none of it is kept */
			if ((rc = db_step_done(db, st)) != DB_DONE)
				ok = false;
			db_reset(st);
		}
	}
	db_release(db, st);
	if (!ok) {
		if (rc == DB_DONE || rc == DB_OK)	/* the statement could not be prepared */
			rc = db_error(db) != DB_OK ? db_error(db) : DB_ERROR;
		db_rollback(db);
		return rc;
	}
	if ((rc = db_commit(db)) != DB_OK)
		return rc;
	tlsrpt_clear(t);
	t->full_logged = false;
	return DB_OK;
}

/* ---- serve ----------------------------------------------------------------------------- */

static void tlsrpt_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt *t = arg;
	size_t n = t->n;
	int rc;

	(void)fd;
	(void)what;
	if (n == 0)
		return;
	if ((rc = tlsrpt_flush(t, t->relay->db)) != DB_OK)
		log_warn("event=tlsrpt_flush rows=%zu error=\"%s\" msg=\"kept for the next try\"",
			 n, db_errmsg(t->relay->db));
	else
		log_debug("event=tlsrpt_flush rows=%zu", n);
}

void tlsrpt_start(struct relay *r)
{
	struct timeval tv = { TLSRPT_FLUSH_SECONDS, 0 };
	struct tlsrpt *t;

	if (!r->cfg->tlsrpt.enabled)
		return;
	t = tlsrpt_new();
	t->relay = r;
	t->timer = event_new(r->base, -1, EV_PERSIST, tlsrpt_timer_cb, t);
	if (t->timer == NULL)
		fatalx("event_new failed for the TLS report counts");
	event_add(t->timer, &tv);
	r->tlsrpt = t;
}

void tlsrpt_stop(struct relay *r)
{
	struct tlsrpt *t = r->tlsrpt;

	if (t == NULL)
		return;
	if (t->n > 0 && tlsrpt_flush(t, r->db) != DB_OK)
		log_warn("event=tlsrpt_flush rows=%zu error=\"%s\" msg=\"lost at shutdown\"", t->n,
			 db_errmsg(r->db));
	tlsrpt_free(t);
	r->tlsrpt = NULL;
}

/* ---- the SMTP client's outcome points -------------------------------------------------- */

/* Is m a delivery whose outcome counts (not a probe, not a hand-off to notify_relay)? */
static bool tlsrpt_counts_for(const struct mta *m)
{
	const struct conf_hostport *nr;

	if (m->relay->tlsrpt == NULL || m->probe)
		return false;
	nr = &m->relay->cfg->relay.notify_relay;
	return !(m->job->notification && nr->host != NULL && nr->host[0] != '\0');
}

/* The local address of m's connection, for sending-mta-ip. */
static void tlsrpt_local_ip(const struct mta *m, char *out, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = m->bev ? bufferevent_getfd(m->bev) : -1;

	*out = '\0';
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)len);
}

static void tlsrpt_note(struct mta *m, enum tlsrpt_result r)
{
	struct mta_host *h = mta_host(m);
	struct tlsrpt_row row = { .domain = m->job->domain, .result = r, .count = 1 };
	char sip[INET6_ADDRSTRLEN] = "";
	char *pstr = NULL;

	tlsrpt_day((int64_t)time(NULL), row.day);
	tlsrpt_policy_of(m, h, r, &row.policy_type, &pstr);
	row.policy_string = pstr;
	row.mx_host = h ? h->name : "";
	if (r != TLSRPT_SUCCESS) {
		tlsrpt_local_ip(m, sip, sizeof(sip));
		row.sending_ip = sip;
		row.receiving_ip = h && m->ai < h->naddr ? h->addrs[m->ai] : "";
	}
	if (!tlsrpt_add(m->relay->tlsrpt, &row) && !m->relay->tlsrpt->full_logged) {
		m->relay->tlsrpt->full_logged = true;
		log_warn("event=tlsrpt_full rows=%d msg=\"outcomes not counted until the next "
			 "flush\"", TLSRPT_MAX_KEYS);
	}
	free(pstr);
}

void tlsrpt_note_session(struct mta *m)
{
	bool noted = m->conn.rpt_noted;

	m->conn.rpt_noted = false;
	if (!tlsrpt_counts_for(m) || noted)	/* a testing policy's failure was counted */
		return;
	if (m->sts_mode == STS_MODE_NONE && m->sts_error != NULL && m->conn.dane != DANE_AUTH)
		tlsrpt_note(m, TLSRPT_STS_POLICY_FETCH_ERROR);
	else if (m->conn.tls)
		tlsrpt_note(m, TLSRPT_SUCCESS);
	else if (!m->conn.plain_only)	/* after a failed handshake: counted at the failure */
		tlsrpt_note(m, TLSRPT_STARTTLS_NOT_SUPPORTED);
}

void tlsrpt_note_failure(struct mta *m, enum policy_reason r)
{
	if (!tlsrpt_counts_for(m) || !policy_reason_is_security(r))
		return;
	tlsrpt_note(m, r == REASON_STS_CERT ? tlsrpt_cert_result(&m->conn.tinfo) :
			    tlsrpt_result_of(r));
}
