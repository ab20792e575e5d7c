/*
 * relay_tlsrpt_report.c - the daily TLS reports (RFC 8460): the _smtp._tls TXT record
 * (looked up through the validating resolver, parsed with a size bound), the JSON report
 * made from a day's counts, gzip'd, and sent by mail through the relay's own queue
 * (mailto:) or POSTed (https:, through the HTTP client's address guard). Each (day, domain)
 * is claimed in tlsrpt_sent before anything is sent, so a day is reported once, whichever
 * node or command gets there first; serve runs it once a day after [tlsrpt] send_at under
 * the "tlsrpt" lease.
 */
#include "relay_tlsrpt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "buf.h"
#include "db.h"
#include "dns.h"
#include "http.h"
#include "lease.h"
#include "log.h"
#include "relay.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

/* ---- the TLS-RPT record ------------------------------------------------------------------ */

static bool tlsrpt_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* s[0..len) without leading and trailing blanks: *start and the new length. */
static size_t tlsrpt_trim(const char *s, size_t len, const char **start)
{
	while (len > 0 && tlsrpt_is_wsp(*s)) {
		s++;
		len--;
	}
	while (len > 0 && tlsrpt_is_wsp(s[len - 1]))
		len--;
	*start = s;
	return len;
}

static int tlsrpt_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

bool tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen)
{
	size_t o = 0;

	if (!str_has_prefix_ci(uri, "mailto:") || outlen == 0)
		return false;
	for (const char *p = uri + 7; *p && *p != '?'; p++) {
		int c = (unsigned char)*p;

		if (c == '%') {
			int hi = tlsrpt_hexval(p[1]), lo = hi < 0 ? -1 : tlsrpt_hexval(p[2]);

			if (hi < 0 || lo < 0)
				return false;
			c = hi * 16 + lo;
			p += 2;
		}
		if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == ',' || c == '"' ||
		    o + 1 >= outlen)
			return false;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return addr_valid(out);
}

/* One URI of a rua list: kept when it is a usable mailto: or https: address. */
static void tlsrpt_rua_add(const char *s, size_t len, struct tlsrpt_rua *out)
{
	char uri[TLSRPT_URI_MAX + 1], addr[256];

	if (len == 0 || len > TLSRPT_URI_MAX || out->n >= TLSRPT_MAX_RUA)
		return;
	memcpy(uri, s, len);
	uri[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)uri[i] <= ' ' || (unsigned char)uri[i] >= 0x7f)
			return;
	if (str_has_prefix_ci(uri, "mailto:")) {
		if (!tlsrpt_mailto_addr(uri, addr, sizeof(addr)))
			return;
	} else if (!str_has_prefix_ci(uri, "https://") || len <= 8) {
		return;
	}
	memcpy(out->uri[out->n++], uri, len + 1);
}

int tlsrpt_rua_parse(const char *txt, size_t len, struct tlsrpt_rua *out)
{
	const char *p = txt, *end = txt + len, *f;
	size_t flen;
	bool first = true, seen_rua = false;

	out->n = 0;
	if (len > TLSRPT_TXT_MAX || memchr(txt, '\0', len) != NULL)
		return -1;
	while (p <= end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *fend = semi ? semi : end;

		flen = tlsrpt_trim(p, (size_t)(fend - p), &f);
		if (first) {
			if (flen != 10 || memcmp(f, "v=TLSRPTv1", 10) != 0)
				return -1;
			first = false;
		} else if (flen >= 4 && memcmp(f, "rua=", 4) == 0 && !seen_rua) {
			const char *u = f + 4, *uend = f + flen;

			seen_rua = true;
			while (u <= uend) {
				const char *comma = memchr(u, ',', (size_t)(uend - u));
				const char *ue = comma ? comma : uend, *us;
				size_t ul = tlsrpt_trim(u, (size_t)(ue - u), &us);

				tlsrpt_rua_add(us, ul, out);
				u = ue + 1;
			}
		}
		if (semi == NULL)
			break;
		p = semi + 1;
	}
	return out->n > 0 ? 0 : -1;
}

int tlsrpt_txt_pick(const uint8_t *const *rr, const size_t *rrlen, size_t nrr, char *out,
		    size_t outlen)
{
	char buf[TLSRPT_TXT_MAX + 1];
	int found = 0;

	for (size_t i = 0; i < nrr; i++) {
		int o = dns_txt_join(rr[i], rrlen[i], buf, sizeof(buf));

		/* only records that start with the version count (RFC 8460 3); one that cannot
		 * be read (cut, a NUL byte, too long) counts as none */
		if (o < 10 || memcmp(buf, "v=TLSRPTv1", 10) != 0 ||
		    (o > 10 && buf[10] != ';' && !tlsrpt_is_wsp(buf[10])))
			continue;
		if (found || (size_t)o >= outlen)
			return -1;
		memcpy(out, buf, (size_t)o + 1);
		found = 1;
	}
	return found;
}

/* ---- the report --------------------------------------------------------------------------- */

static int tlsrpt_row_cmp(const void *a, const void *b)
{
	const struct tlsrpt_row *x = a, *y = b;
	int c;

	if ((c = strcmp(x->policy_type, y->policy_type)) != 0 ||
	    (c = strcmp(x->mx_host, y->mx_host)) != 0)
		return c;
	if (x->result != y->result)
		return x->result < y->result ? -1 : 1;
	if ((c = strcmp(x->sending_ip, y->sending_ip)) != 0)
		return c;
	return strcmp(x->receiving_ip, y->receiving_ip);
}

static void tlsrpt_json_set(json_t *o, const char *k, json_t *v)
{
	if (v == NULL || json_object_set_new(o, k, v) < 0)
		fatalx("out of memory building a TLS report");
}

/* policy-string: the policy's lines as an array. */
static json_t *tlsrpt_policy_strings(const char *s)
{
	json_t *a = json_array();

	while (s && *s) {
		const char *nl = strchr(s, '\n');
		size_t l = nl ? (size_t)(nl - s) : strlen(s);

		if (l > 0)
			json_array_append_new(a, json_stringn(s, l));
		s += l + (nl ? 1 : 0);
	}
	return a;
}

/* One entry of policies[] for rows [0, n) of the same policy type and MX host. */
static json_t *tlsrpt_policy_json(const struct tlsrpt_meta *meta, const struct tlsrpt_row *r,
				  size_t n)
{
	json_t *p = json_object(), *pol = json_object(), *sum = json_object();
	json_t *fail = json_array();
	const char *pstr = "";
	uint64_t ok = 0, bad = 0;

	for (size_t i = 0; i < n; i++) {
		if (*r[i].policy_string && !*pstr)
			pstr = r[i].policy_string;
		if (r[i].result == TLSRPT_SUCCESS) {
			ok += r[i].count;
			continue;
		}
		bad += r[i].count;
		{
			json_t *d = json_object();

			tlsrpt_json_set(d, "result-type", json_string(tlsrpt_result_name(r[i].result)));
			if (*r[i].sending_ip)
				tlsrpt_json_set(d, "sending-mta-ip", json_string(r[i].sending_ip));
			if (*r[i].mx_host)
				tlsrpt_json_set(d, "receiving-mx-hostname", json_string(r[i].mx_host));
			if (*r[i].receiving_ip)
				tlsrpt_json_set(d, "receiving-ip", json_string(r[i].receiving_ip));
			tlsrpt_json_set(d, "failed-session-count", json_integer((json_int_t)r[i].count));
			json_array_append_new(fail, d);
		}
	}
	tlsrpt_json_set(pol, "policy-type", json_string(r[0].policy_type));
	tlsrpt_json_set(pol, "policy-string", tlsrpt_policy_strings(pstr));
	tlsrpt_json_set(pol, "policy-domain", json_string(meta->domain));
	if (*r[0].mx_host)
		tlsrpt_json_set(pol, "mx-host", json_string(r[0].mx_host));
	tlsrpt_json_set(sum, "total-successful-session-count", json_integer((json_int_t)ok));
	tlsrpt_json_set(sum, "total-failure-session-count", json_integer((json_int_t)bad));
	tlsrpt_json_set(p, "policy", pol);
	tlsrpt_json_set(p, "summary", sum);
	tlsrpt_json_set(p, "failure-details", fail);
	return p;
}

char *tlsrpt_report_json(const struct tlsrpt_meta *meta, const struct tlsrpt_row *rows,
			 size_t n, char **report_id)
{
	struct tlsrpt_row *s = xreallocarray(NULL, n ? n : 1, sizeof(*s));
	json_t *root = json_object(), *range = json_object(), *pols = json_array();
	char t0[32], t1[32], *out;

	memcpy(s, rows, n * sizeof(*s));
	qsort(s, n, sizeof(*s), tlsrpt_row_cmp);
	*report_id = xasprintf("%s_%s@%s", meta->day, meta->domain, meta->submitter);
	snprintf(t0, sizeof(t0), "%sT00:00:00Z", meta->day);
	snprintf(t1, sizeof(t1), "%sT23:59:59Z", meta->day);
	tlsrpt_json_set(root, "organization-name", json_string(meta->organization));
	tlsrpt_json_set(range, "start-datetime", json_string(t0));
	tlsrpt_json_set(range, "end-datetime", json_string(t1));
	tlsrpt_json_set(root, "date-range", range);
	tlsrpt_json_set(root, "contact-info", json_string(meta->contact));
	tlsrpt_json_set(root, "report-id", json_string(*report_id));
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(s[j].policy_type, s[i].policy_type) == 0 &&
				strcmp(s[j].mx_host, s[i].mx_host) == 0; j++)
			;
		json_array_append_new(pols, tlsrpt_policy_json(meta, s + i, j - i));
	}
	tlsrpt_json_set(root, "policies", pols);
	out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (out == NULL)
		fatalx("out of memory building a TLS report");
	json_decref(root);
	free(s);
	return out;
}

unsigned char *tlsrpt_gzip(const void *data, size_t len, size_t *outlen)
{
	z_stream z = { 0 };
	uLong bound;
	unsigned char *out;

	/* windowBits 15 + 16: a gzip header and trailer rather than zlib's */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		fatalx("deflateInit2 failed");
	bound = deflateBound(&z, (uLong)len) + 32;
	out = xmalloc(bound);
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		fatalx("gzip of a TLS report failed");
	*outlen = z.total_out;
	deflateEnd(&z);
	return out;
}

static int64_t tlsrpt_day_start(const char *day)
{
	struct tm tm = { 0 };

	if (sscanf(day, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

char *tlsrpt_filename(const struct tlsrpt_meta *meta)
{
	int64_t b = tlsrpt_day_start(meta->day);

	return xasprintf("%s!%s!%lld!%lld.json.gz", meta->submitter, meta->domain, (long long)b,
			 (long long)(b + 86399));
}

/* Base64 in lines of 76 characters. */
static void tlsrpt_base64(struct buf *b, const unsigned char *p, size_t n)
{
	unsigned char line[80];

	for (size_t i = 0; i < n; i += 57) {
		int l = EVP_EncodeBlock(line, p + i, (int)(n - i < 57 ? n - i : 57));

		buf_add(b, line, (size_t)l);
		buf_adds(b, "\r\n");
	}
}

char *tlsrpt_mail(const struct tlsrpt_meta *meta, const char *report_id, const char *to,
		  const unsigned char *gz, size_t gzlen, size_t *len)
{
	char date[64], bnd[17], mid[17], *fname = tlsrpt_filename(meta), *out;
	time_t now = time(NULL);
	struct tm tm;
	struct buf b;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	random_id(bnd);
	random_id(mid);
	buf_init(&b, SIZE_MAX);
	buf_addf(&b, "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n", meta->from, to, date);
	buf_addf(&b, "Message-ID: <tlsrpt.%s.%s@%s>\r\n", meta->day, mid, meta->submitter);
	buf_addf(&b, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", meta->domain,
		 meta->submitter, report_id);
	buf_addf(&b, "TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n", meta->domain,
		 meta->submitter);
	buf_addf(&b, "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\";"
		 "\r\n\tboundary=\"tlsrpt-%s\"\r\n\r\n", bnd);
	buf_addf(&b, "This is a multipart message in MIME format.\r\n\r\n--tlsrpt-%s\r\n", bnd);
	buf_addf(&b, "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
		 "This is an aggregate TLS report (RFC 8460) from %s for %s, %s (UTC).\r\n"
		 "\r\n--tlsrpt-%s\r\n", meta->submitter, meta->domain, meta->day, bnd);
	buf_addf(&b, "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
		 "Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n", fname);
	tlsrpt_base64(&b, gz, gzlen);
	buf_addf(&b, "\r\n--tlsrpt-%s--\r\n", bnd);
	free(fname);
	out = buf_release(&b, len);
	return out;
}

/* ---- the database ------------------------------------------------------------------------- */

static enum tlsrpt_result tlsrpt_result_parse(const char *s)
{
	for (int r = 0; r < TLSRPT_NRESULT; r++)
		if (strcmp(s, tlsrpt_result_name((enum tlsrpt_result)r)) == 0)
			return (enum tlsrpt_result)r;
	return TLSRPT_VALIDATION_FAILURE;
}

/* The rows of one domain and day, with their strings in *pool (free both). */
static size_t tlsrpt_rows_load(struct db *db, const char *day, const char *domain,
			       struct tlsrpt_row **rows, char ***pool)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT policy_type, policy_string, mx_host, result_type, sending_ip, receiving_ip, "
		"count FROM tlsrpt_counts WHERE day = ? AND policy_domain = ?");
	size_t n = 0;

	*rows = NULL;
	*pool = NULL;
	db_bind_text(st, 1, day);
	db_bind_text(st, 2, domain);
	while (st != NULL && db_step_row(db, st)) {
		struct tlsrpt_row *r;
		char **p;

		*rows = xreallocarray(*rows, n + 1, sizeof(**rows));
		*pool = xreallocarray(*pool, (n + 1) * 5, sizeof(char *));
		p = *pool + n * 5;
		r = &(*rows)[n++];
		memset(r, 0, sizeof(*r));
		snprintf(r->day, sizeof(r->day), "%s", day);
		r->domain = domain;
		r->policy_type = p[0] = xstrdup(db_col_text(st, 0));
		r->policy_string = p[1] = xstrdup(db_col_text(st, 1));
		r->mx_host = p[2] = xstrdup(db_col_text(st, 2));
		r->result = tlsrpt_result_parse(db_col_text(st, 3));
		r->sending_ip = p[3] = xstrdup(db_col_text(st, 4));
		r->receiving_ip = p[4] = xstrdup(db_col_text(st, 5));
		r->count = (uint64_t)db_col_int(st, 6);
	}
	db_finalize(st);
	return n;
}

static void tlsrpt_rows_free(struct tlsrpt_row *rows, char **pool, size_t n)
{
	for (size_t i = 0; i < n * 5; i++)
		free(pool[i]);
	free(pool);
	free(rows);
}

/* Domains with counts for day that were not reported to yet. */
static size_t tlsrpt_domains_load(struct db *db, const char *day, bool all, char ***out)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT DISTINCT policy_domain FROM tlsrpt_counts c WHERE c.day = ? AND "
		"(? = 1 OR NOT EXISTS (SELECT 1 FROM tlsrpt_sent s WHERE s.day = c.day AND "
		"s.policy_domain = c.policy_domain)) ORDER BY policy_domain");
	size_t n = 0;

	*out = NULL;
	db_bind_text(st, 1, day);
	db_bind_int(st, 2, all ? 1 : 0);
	while (st != NULL && db_step_row(db, st)) {
		*out = xreallocarray(*out, n + 1, sizeof(char *));
		(*out)[n++] = xstrdup(db_col_text(st, 0));
	}
	db_finalize(st);
	return n;
}

/* Claim (day, domain) for this run: false when someone else already has. */
static bool tlsrpt_claim(struct db *db, const char *day, const char *domain, const char *what)
{
	struct db_stmt *st = db_prepare(db,
		"INSERT INTO tlsrpt_sent (day, policy_domain, sent, result) VALUES (?, ?, ?, ?) "
		"ON CONFLICT (day, policy_domain) DO NOTHING");
	bool ok;

	db_bind_text(st, 1, day);
	db_bind_text(st, 2, domain);
	db_bind_int(st, 3, (int64_t)time(NULL));
	db_bind_text(st, 4, what);
	ok = st != NULL && db_step_done(db, st) == DB_DONE && db_changes(db) == 1;
	db_finalize(st);
	return ok;
}

static void tlsrpt_record(struct db *db, const char *day, const char *domain, const char *what)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE tlsrpt_sent SET result = ? WHERE day = ? AND policy_domain = ?");

	db_bind_text(st, 1, what);
	db_bind_text(st, 2, day);
	db_bind_text(st, 3, domain);
	if (st == NULL || db_step_done(db, st) != DB_DONE)
		log_warn("event=tlsrpt_record day=%s domain=%s error=\"%s\"", day, domain,
			 db_errmsg(db));
	db_finalize(st);
}

/* ---- one run over a day --------------------------------------------------------------------- */

struct tlsrpt_run {
	struct tlsrpt_run_opts o;
	char day[11];
	struct http_client *http;
	struct event *step;
	char **domains;
	size_t ndomain, di;
	int dns_handle;			/* > 0 while a lookup runs */
	int posts;			/* POSTs outstanding for the current domain */
	struct buf outcome;		/* what happened to the current domain's report */
	struct tlsrpt_run_result res;
	json_t *dry;			/* the dry run's document */
	char *from, *submitter;
	bool done;
};

static void tlsrpt_run_next(struct tlsrpt_run *run);

static void tlsrpt_step_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tlsrpt_run_next(arg);
}

/* Go on with the next domain from the loop (never from inside a DNS or HTTP callback). */
static void tlsrpt_advance(struct tlsrpt_run *run)
{
	struct timeval zero = { 0, 0 };

	run->di++;
	evtimer_add(run->step, &zero);
}

static void tlsrpt_meta_of(const struct tlsrpt_run *run, const char *domain,
			   struct tlsrpt_meta *m)
{
	const struct tlsrpt_conf *c = &run->o.cfg->tlsrpt;

	memset(m, 0, sizeof(*m));
	m->organization = *c->organization ? c->organization : run->submitter;
	m->contact = *c->contact ? c->contact : run->from;
	m->submitter = run->submitter;
	m->from = run->from;
	m->domain = domain;
	snprintf(m->day, sizeof(m->day), "%s", run->day);
}

/* The current domain's report is out (or failed): note it, go on. */
static void tlsrpt_domain_done(struct tlsrpt_run *run)
{
	const char *dom = run->domains[run->di];
	char *what;

	buf_add(&run->outcome, "", 1);
	what = buf_release(&run->outcome, NULL);
	tlsrpt_record(run->o.db, run->day, dom, what);
	log_info("event=tlsrpt_sent day=%s domain=%s result=\"%s\"", run->day, dom, what);
	free(what);
	buf_init(&run->outcome, 4096);
	run->res.reports++;
	tlsrpt_advance(run);
}

struct tlsrpt_post {
	struct tlsrpt_run *run;
	char *uri;
};

static void tlsrpt_post_cb(struct http_response *resp, void *arg)
{
	struct tlsrpt_post *p = arg;
	struct tlsrpt_run *run = p->run;
	bool ok = resp->result == HTTP_OK && resp->status >= 200 && resp->status < 300;

	stats_tlsrpt_report(ok ? "posted" : "failed");
	if (!ok) {
		run->res.failed++;
		log_warn("event=tlsrpt_post domain=%s uri=%s result=%s status=%ld error=\"%s\"",
			 run->domains[run->di], p->uri, http_result_str(resp->result), resp->status,
			 resp->error ? resp->error : "");
	}
	buf_addf(&run->outcome, "%s%s %s %ld", run->outcome.len ? "; " : "", p->uri,
		 ok ? "ok" : http_result_str(resp->result), resp->status);
	http_response_free(resp);
	free(p->uri);
	free(p);
	if (--run->posts == 0)
		tlsrpt_domain_done(run);
}

/* Send the report to one address; POSTs finish later (run->posts). */
static void tlsrpt_send_one(struct tlsrpt_run *run, const struct tlsrpt_meta *meta,
			    const char *uri, const char *report_id, const unsigned char *gz,
			    size_t gzlen)
{
	char addr[256];

	if (str_has_prefix_ci(uri, "mailto:")) {
		size_t len;
		char *msg;
		bool ok;

		tlsrpt_mailto_addr(uri, addr, sizeof(addr));
		msg = tlsrpt_mail(meta, report_id, addr, gz, gzlen, &len);
		ok = run->o.mail != NULL && run->o.mail(run->o.mail_arg, meta->from, addr, msg, len);
		free(msg);
		stats_tlsrpt_report(ok ? "mailed" : "failed");
		if (!ok)
			run->res.failed++;
		buf_addf(&run->outcome, "%s%s %s", run->outcome.len ? "; " : "", uri,
			 ok ? "queued" : "failed");
		return;
	}
	{
		struct http_request_opts ro = { .timeout_ms = 30000, .max_body = 64 * 1024 };
		struct tlsrpt_post *p = xcalloc(1, sizeof(*p));

		p->run = run;
		p->uri = xstrdup(uri);
		run->posts++;
		if (http_post(run->http, uri, "application/tlsrpt+gzip", gz, gzlen, &ro,
			      tlsrpt_post_cb, p) < 0) {
			run->posts--;
			run->res.failed++;
			stats_tlsrpt_report("failed");
			buf_addf(&run->outcome, "%s%s failed", run->outcome.len ? "; " : "", uri);
			free(p->uri);
			free(p);
		}
	}
}

/* A domain with a record: build its report and send it (or print it, dry run). */
static void tlsrpt_report_domain(struct tlsrpt_run *run, const struct tlsrpt_rua *rua)
{
	const char *dom = run->domains[run->di];
	struct tlsrpt_meta meta;
	struct tlsrpt_row *rows;
	char **pool, *json, *report_id;
	size_t n, gzlen;
	unsigned char *gz;

	if (!run->o.dry_run && !tlsrpt_claim(run->o.db, run->day, dom, "sending")) {
		log_info("event=tlsrpt_skip day=%s domain=%s msg=\"already reported\"", run->day, dom);
		tlsrpt_advance(run);
		return;
	}
	tlsrpt_meta_of(run, dom, &meta);
	n = tlsrpt_rows_load(run->o.db, run->day, dom, &rows, &pool);
	json = tlsrpt_report_json(&meta, rows, n, &report_id);
	tlsrpt_rows_free(rows, pool, n);
	if (run->o.dry_run) {
		json_t *e = json_object(), *ua = json_array();

		for (size_t i = 0; i < rua->n; i++)
			json_array_append_new(ua, json_string(rua->uri[i]));
		tlsrpt_json_set(e, "policy-domain", json_string(dom));
		tlsrpt_json_set(e, "rua", ua);
		tlsrpt_json_set(e, "report", json_loads(json, 0, NULL));
		json_array_append_new(json_object_get(run->dry, "reports"), e);
		run->res.reports++;
		free(json);
		free(report_id);
		tlsrpt_advance(run);
		return;
	}
	gz = tlsrpt_gzip(json, strlen(json), &gzlen);
	for (size_t i = 0; i < rua->n; i++)
		tlsrpt_send_one(run, &meta, rua->uri[i], report_id, gz, gzlen);
	free(gz);
	free(json);
	free(report_id);
	if (run->posts == 0)
		tlsrpt_domain_done(run);
}

static void tlsrpt_no_rua(struct tlsrpt_run *run, const char *why)
{
	const char *dom = run->domains[run->di];

	log_info("event=tlsrpt_no_report day=%s domain=%s why=\"%s\"", run->day, dom, why);
	run->res.no_rua++;
	if (run->o.dry_run)
		json_array_append_new(json_object_get(run->dry, "no-report"), json_string(dom));
	else
		tlsrpt_claim(run->o.db, run->day, dom, why);
	tlsrpt_advance(run);
}

static void tlsrpt_txt_cb(struct dns_answer *a, void *arg)
{
	struct tlsrpt_run *run = arg;
	char txt[TLSRPT_TXT_MAX + 1];
	struct tlsrpt_rua rua;
	const uint8_t **rr;
	size_t *rrlen;
	int found;

	run->dns_handle = 0;
	if (a->status == DNS_SERVFAIL) {
		log_warn("event=tlsrpt_dns day=%s domain=%s msg=\"lookup failed, left for a later "
			 "run\"", run->day, run->domains[run->di]);
		run->res.skipped++;
		dns_answer_free(a);
		tlsrpt_advance(run);
		return;
	}
	if (a->security == DNS_BOGUS) {
		dns_answer_free(a);
		tlsrpt_no_rua(run, "bogus");
		return;
	}
	rr = xreallocarray(NULL, a->nrr + 1, sizeof(*rr));
	rrlen = xreallocarray(NULL, a->nrr + 1, sizeof(*rrlen));
	for (size_t i = 0; i < a->nrr; i++) {
		rr[i] = a->rrs[i].data;
		rrlen[i] = a->rrs[i].len;
	}
	found = a->status == DNS_OK ? tlsrpt_txt_pick(rr, rrlen, a->nrr, txt, sizeof(txt)) : 0;
	free(rr);
	free(rrlen);
	dns_answer_free(a);
	if (found <= 0 || tlsrpt_rua_parse(txt, strlen(txt), &rua) < 0) {
		tlsrpt_no_rua(run, found < 0 ? "several or malformed records" :
			      found == 0 ? "no record" : "no usable rua");
		return;
	}
	tlsrpt_report_domain(run, &rua);
}

static void tlsrpt_run_finish(struct tlsrpt_run *run)
{
	run->done = true;
	if (run->o.dry_run && run->o.out != NULL) {
		char *s = json_dumps(run->dry, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (s == NULL)
			fatalx("out of memory printing the TLS reports");
		fprintf(run->o.out, "%s\n", s);
		free(s);
	}
	log_info("event=tlsrpt_run day=%s reports=%u no_report=%u failed=%u skipped=%u%s",
		 run->day, run->res.reports, run->res.no_rua, run->res.failed, run->res.skipped,
		 run->o.dry_run ? " dry_run=yes" : "");
	if (run->o.done)
		run->o.done(run->o.done_arg, &run->res);
}

static void tlsrpt_run_next(struct tlsrpt_run *run)
{
	char *name;

	if (run->done)
		return;
	if (run->di >= run->ndomain) {
		tlsrpt_run_finish(run);
		return;
	}
	/*
	 * serve acts only while it holds the lease. The claim in tlsrpt_sent is what keeps a
	 * report from going twice; the lease keeps the nodes from doing the work side by side.
	 */
	if (run->o.lease != NULL && !lease_valid(run->o.lease)) {
		log_warn("event=tlsrpt_run day=%s msg=\"lease lost, stopping\"", run->day);
		run->res.skipped += (unsigned)(run->ndomain - run->di);
		run->res.stopped = true;
		run->di = run->ndomain;
		tlsrpt_run_finish(run);
		return;
	}
	name = xasprintf("_smtp._tls.%s", run->domains[run->di]);
	run->dns_handle = dns_resolve(run->o.dns, name, DNS_RR_TXT, tlsrpt_txt_cb, run);
	free(name);
	if (run->dns_handle < 0) {
		run->dns_handle = 0;
		run->res.skipped++;
		tlsrpt_advance(run);
	}
}

struct tlsrpt_run *tlsrpt_run_start(const struct tlsrpt_run_opts *opts)
{
	struct tlsrpt_run *run = xcalloc(1, sizeof(*run));
	struct http_client_opts ho = { .allow_private = opts->cfg->tlsrpt.allow_private,
				       .ca_file = *opts->cfg->relay.ca_file ?
						  opts->cfg->relay.ca_file : NULL,
				       .user_agent = "postwarden-tlsrpt" };
	struct timeval zero = { 0, 0 };

	run->o = *opts;
	snprintf(run->day, sizeof(run->day), "%s", opts->day);
	run->submitter = xstrdup(opts->cfg->server.hostname);
	run->from = *opts->cfg->tlsrpt.from ? xstrdup(opts->cfg->tlsrpt.from) :
		    xasprintf("postmaster@%s", opts->cfg->server.hostname);
	run->http = http_client_new(opts->base, &ho);
	run->step = evtimer_new(opts->base, tlsrpt_step_cb, run);
	if (run->step == NULL)
		fatalx("evtimer_new failed for the TLS reports");
	buf_init(&run->outcome, 4096);
	run->dry = json_object();
	tlsrpt_json_set(run->dry, "day", json_string(run->day));
	tlsrpt_json_set(run->dry, "reports", json_array());
	tlsrpt_json_set(run->dry, "no-report", json_array());
	run->ndomain = tlsrpt_domains_load(opts->db, run->day, opts->dry_run, &run->domains);
	evtimer_add(run->step, &zero);
	return run;
}

void tlsrpt_run_free(struct tlsrpt_run *run)
{
	if (run == NULL)
		return;
	if (run->dns_handle > 0)
		dns_cancel(run->o.dns, run->dns_handle);
	http_client_free(run->http);	/* cancels POSTs still running */
	event_free(run->step);
	for (size_t i = 0; i < run->ndomain; i++)
		free(run->domains[i]);
	free(run->domains);
	buf_free(&run->outcome);
	json_decref(run->dry);
	free(run->from);
	free(run->submitter);
	free(run);
}

/* ---- serve: once a day ------------------------------------------------------------------------ */

#define TLSRPT_TICK_SECONDS 60

struct tlsrpt_sched {
	struct relay *relay;
	const struct lease *lease;	/* borrowed */
	struct event *tick;
	struct tlsrpt_run *run;
	char done_day[11];		/* the UTC day whose run (for the day before) finished */
	char run_day[11];
};

/* A report by mail: one message from the reports' sender through the queue. */
static bool tlsrpt_sched_mail(void *arg, const char *from, const char *to, const char *data,
			      size_t len)
{
	struct relay *r = arg;
	struct queue_rcpt rcpt = { .addr = (char *)(uintptr_t)to };
	struct queue_envelope env = { .sender = (char *)(uintptr_t)from, .body = "7BIT",
				      .rcpts = &rcpt, .nrcpt = 1 };
	char *id = queue_inject(r->queue, &env, data, len);
	bool ok = id != NULL;

	if (ok)
		log_info("event=tlsrpt_mail id=%s to=%s", id, to);
	free(id);
	return ok;
}

static void tlsrpt_sched_done(void *arg, const struct tlsrpt_run_result *res)
{
	struct tlsrpt_sched *s = arg;

	/* stopped for the lease: the next tick (or the node holding it) takes it up */
	if (!res->stopped)
		memcpy(s->done_day, s->run_day, sizeof(s->done_day));
	tlsrpt_run_free(s->run);	/* from the run's own step event: allowed */
	s->run = NULL;
}

static void tlsrpt_sched_tick(evutil_socket_t fd, short what, void *arg)
{
	struct tlsrpt_sched *s = arg;
	struct relay *r = s->relay;
	int64_t now = (int64_t)time(NULL);
	char today[11], yesterday[11];
	struct tlsrpt_run_opts o;

	struct timeval every = { TLSRPT_TICK_SECONDS, 0 };

	(void)fd;
	(void)what;
	evtimer_add(s->tick, &every);
	tlsrpt_day(now, today);
	if (s->run != NULL || strcmp(s->done_day, today) == 0 ||
	    now % 86400 < r->cfg->tlsrpt.send_at || (s->lease && !lease_valid(s->lease)))
		return;
	/* the last seconds' counts first: yesterday's may still be in memory */
	if (r->tlsrpt != NULL && tlsrpt_flush(r->tlsrpt, r->db) != DB_OK)
		return;
	tlsrpt_day(now - 86400, yesterday);
	memcpy(s->run_day, today, sizeof(s->run_day));
	o = (struct tlsrpt_run_opts){ .cfg = r->cfg, .base = r->base, .db = r->db, .dns = r->dns,
				      .day = yesterday, .mail = tlsrpt_sched_mail, .mail_arg = r,
				      .lease = s->lease, .done = tlsrpt_sched_done, .done_arg = s };
	log_info("event=tlsrpt_run_start day=%s", yesterday);
	s->run = tlsrpt_run_start(&o);
}

struct tlsrpt_sched *tlsrpt_sched_start(struct relay *r, const struct lease *lease)
{
	struct tlsrpt_sched *s;
	struct timeval first = { 5, 0 };	/* a first look soon after start */

	if (!r->cfg->tlsrpt.enabled)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->relay = r;
	s->lease = lease;
	s->tick = evtimer_new(r->base, tlsrpt_sched_tick, s);
	if (s->tick == NULL)
		fatalx("evtimer_new failed for the TLS reports");
	evtimer_add(s->tick, &first);
	return s;
}

void tlsrpt_sched_stop(struct tlsrpt_sched *s)
{
	if (s == NULL)
		return;
	tlsrpt_run_free(s->run);
	event_free(s->tick);
	free(s);
}
