/*
 * test_relay_tlsrpt.c - TLS reporting (RFC 8460): result types and policy types, the
 * in-memory counts and their batched flush into tlsrpt_counts, the _smtp._tls record
 * parser, the JSON report field by field, its gzip and the report mail.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "relay/relay_mta_priv.h"
#include "relay/relay_tlsrpt.h"
#include "unit.h"
#include "xmalloc.h"

static void test_result_names(void)
{
	CHECK_STREQ(tlsrpt_result_name(TLSRPT_SUCCESS), "");
	CHECK_STREQ(tlsrpt_result_name(TLSRPT_STARTTLS_NOT_SUPPORTED), "starttls-not-supported");
	CHECK_STREQ(tlsrpt_result_name(TLSRPT_CERT_HOST_MISMATCH), "certificate-host-mismatch");
	CHECK_STREQ(tlsrpt_result_name(TLSRPT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
	CHECK(tlsrpt_result_of(REASON_NO_STARTTLS) == TLSRPT_STARTTLS_NOT_SUPPORTED);
	CHECK(tlsrpt_result_of(REASON_STARTTLS_REFUSED) == TLSRPT_STARTTLS_NOT_SUPPORTED);
	CHECK(tlsrpt_result_of(REASON_DANE_MISMATCH) == TLSRPT_TLSA_INVALID);
	CHECK(tlsrpt_result_of(REASON_DNSSEC_BOGUS) == TLSRPT_DNSSEC_INVALID);
	CHECK(tlsrpt_result_of(REASON_TLS_PROTOCOL) == TLSRPT_VALIDATION_FAILURE);
	CHECK(tlsrpt_result_of(REASON_STS_NO_TLS) == TLSRPT_STARTTLS_NOT_SUPPORTED);
	CHECK(tlsrpt_result_of(REASON_STS_MX_MISMATCH) == TLSRPT_VALIDATION_FAILURE);
}

/* An MX certificate refused under MTA-STS is reported by what was wrong with it. */
static void test_cert_result(void)
{
	struct tls_info ti = { .webpki_valid = false };

	snprintf(ti.webpki_error, sizeof(ti.webpki_error), "certificate has expired");
	CHECK(tlsrpt_cert_result(&ti) == TLSRPT_CERT_EXPIRED);
	snprintf(ti.webpki_error, sizeof(ti.webpki_error), "hostname mismatch");
	CHECK(tlsrpt_cert_result(&ti) == TLSRPT_CERT_HOST_MISMATCH);
	snprintf(ti.webpki_error, sizeof(ti.webpki_error), "self-signed certificate");
	CHECK(tlsrpt_cert_result(&ti) == TLSRPT_CERT_NOT_TRUSTED);
	ti.webpki_valid = true;		/* a valid name: the TLS version was the problem */
	ti.webpki_error[0] = '\0';
	CHECK(tlsrpt_cert_result(&ti) == TLSRPT_VALIDATION_FAILURE);
}

/* A session under an MTA-STS policy (or whose policy could not be fetched) reports "sts". */
static void test_policy_of_sts(void)
{
	struct mta_host none = { .name = "mx.c.test", .dane = DANE_NONE };
	struct mta m = { .sts_mode = STS_MODE_ENFORCE };
	const char *type;
	char *s;

	m.sts.text = "version: STSv1\r\nmode: enforce\r\nmx: mx.c.test\r\nmax_age: 86400\r\n";
	tlsrpt_policy_of(&m, &none, TLSRPT_SUCCESS, &type, &s);
	CHECK_STREQ(type, "sts");
	CHECK_STREQ(s, "version: STSv1\nmode: enforce\nmx: mx.c.test\nmax_age: 86400");
	free(s);
	m.sts_mode = STS_MODE_NONE;
	m.sts.text = NULL;
	m.sts_error = "the policy server answered 404";
	tlsrpt_policy_of(&m, &none, TLSRPT_STS_POLICY_FETCH_ERROR, &type, &s);
	CHECK_STREQ(type, "sts");
	CHECK_STREQ(s, "");
	free(s);
	m.sts_error = NULL;		/* control: no policy at all */
	tlsrpt_policy_of(&m, &none, TLSRPT_SUCCESS, &type, &s);
	CHECK_STREQ(type, "no-policy-found");
	free(s);
}

static void test_policy_of(void)
{
	uint8_t d[2] = { 0xab, 0x01 };
	struct dns_tlsa t = { .usage = 3, .selector = 1, .mtype = 1, .data = d, .len = 2 };
	struct mta_host dane = { .name = "mx.a.test", .dane = DANE_AUTH, .tlsa = &t, .ntlsa = 1 };
	struct mta_host none = { .name = "mx.b.test", .dane = DANE_NONE };
	const char *type;
	char *s;

	tlsrpt_policy_of(NULL, &dane, TLSRPT_SUCCESS, &type, &s);
	CHECK_STREQ(type, "tlsa");
	CHECK_STREQ(s, "3 1 1 ab01");
	free(s);
	tlsrpt_policy_of(NULL, &none, TLSRPT_SUCCESS, &type, &s);
	CHECK_STREQ(type, "no-policy-found");
	CHECK_STREQ(s, "");
	free(s);
	tlsrpt_policy_of(NULL, &none, TLSRPT_STARTTLS_NOT_SUPPORTED, &type, &s);
	CHECK_STREQ(type, "no-policy-found");
	free(s);
	/* a BOGUS MX answer: no host yet, still a DANE failure */
	tlsrpt_policy_of(NULL, NULL, TLSRPT_DNSSEC_INVALID, &type, &s);
	CHECK_STREQ(type, "tlsa");
	free(s);
}

static struct tlsrpt_row row(const char *dom, const char *mx, enum tlsrpt_result r,
			     const char *rip, uint64_t n)
{
	struct tlsrpt_row x = { .domain = dom, .policy_type = "no-policy-found",
				.policy_string = "", .mx_host = mx, .result = r,
				.sending_ip = r ? "127.0.0.1" : "", .receiving_ip = rip,
				.count = n };

	memcpy(x.day, "2026-12-04", 11);
	return x;
}

static int64_t count_of(struct db *db, const char *dom, const char *result)
{
	struct db_stmt *st = db_prepare(db, "SELECT sum(count) FROM tlsrpt_counts "
					"WHERE policy_domain = ? AND result_type = ?");
	int64_t n = -1;

	db_bind_text(st, 1, dom);
	db_bind_text(st, 2, result);
	if (db_step_row(db, st))
		n = db_col_null(st, 0) ? 0 : db_col_int(st, 0);
	db_finalize(st);
	return n;
}

static void test_counts_flush_in_batches(void)
{
	char dir[] = "/tmp/pw-tlsrpt-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct tlsrpt *t = tlsrpt_new();
	struct tlsrpt_row a = row("a.test", "mx.a.test", TLSRPT_SUCCESS, "", 1);
	struct tlsrpt_row b = row("b.test", "mx.b.test", TLSRPT_STARTTLS_NOT_SUPPORTED,
				  "127.0.0.3", 1);

	for (int i = 0; i < 5; i++)
		CHECK(tlsrpt_add(t, &a));
	CHECK(tlsrpt_add(t, &b));
	CHECK(tlsrpt_pending(t) == 2);
	/* nothing in the database before the flush */
	CHECK(count_of(db, "a.test", "") == 0);
	CHECK(tlsrpt_flush(t, db) == DB_OK);
	CHECK(tlsrpt_pending(t) == 0);
	CHECK(count_of(db, "a.test", "") == 5);
	CHECK(count_of(db, "b.test", "starttls-not-supported") == 1);
	/* a second batch adds to the rows */
	a.count = 2;
	CHECK(tlsrpt_add(t, &a));
	CHECK(tlsrpt_flush(t, db) == DB_OK);
	CHECK(count_of(db, "a.test", "") == 7);
	CHECK(count_of(db, "b.test", "starttls-not-supported") == 1);
	/* an empty flush is no work */
	CHECK(tlsrpt_flush(t, db) == DB_OK);
	/* a database that refuses the batch: nothing written, the counts kept for the next */
	CHECK(tlsrpt_add(t, &a) && tlsrpt_add(t, &b));
	CHECK(db_exec(db, "PRAGMA query_only = 1") == DB_OK);
	CHECK(tlsrpt_flush(t, db) != DB_OK);
	CHECK(tlsrpt_pending(t) == 2);
	CHECK(db_exec(db, "PRAGMA query_only = 0") == DB_OK);
	db_clear_error(db);
	CHECK(count_of(db, "a.test", "") == 7);
	CHECK(tlsrpt_flush(t, db) == DB_OK);
	CHECK(count_of(db, "a.test", "") == 9);
	CHECK(count_of(db, "b.test", "starttls-not-supported") == 2);
	tlsrpt_free(t);
	db_close(db);
	unit_remove_dir(dir);
}

static void test_rua_parse(void)
{
	struct tlsrpt_rua r;
	const char *ok = "v=TLSRPTv1; rua=mailto:tls@rpt.test, https://rpt.test/v1 ;x=y";
	const char *enc = "v=TLSRPTv1;rua=mailto:tls%2Breports@rpt.test?subject=x";
	char addr[256];

	CHECK(tlsrpt_rua_parse(ok, strlen(ok), &r) == 0);
	CHECK(r.n == 2);
	CHECK_STREQ(r.uri[0], "mailto:tls@rpt.test");
	CHECK_STREQ(r.uri[1], "https://rpt.test/v1");
	CHECK(tlsrpt_rua_parse(enc, strlen(enc), &r) == 0);
	CHECK(tlsrpt_mailto_addr(r.uri[0], addr, sizeof(addr)));
	CHECK_STREQ(addr, "tls+reports@rpt.test");
	/* not a record, other schemes only, no rua, version not first, too long */
	CHECK(tlsrpt_rua_parse("v=spf1 -all", 11, &r) < 0);
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1; rua=http://x.test/", 30, &r) < 0);
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1", 10, &r) < 0);
	CHECK(tlsrpt_rua_parse("rua=mailto:a@b.test; v=TLSRPTv1", 31, &r) < 0);
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1;rua=mailto:a<b>@c.test", 33, &r) < 0);
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1; rua=", 16, &r) < 0);
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1; rua=mailto:nobody", 29, &r) < 0);	/* no domain */
	CHECK(tlsrpt_rua_parse("v=TLSRPTv1; ext=1", 17, &r) < 0);
	/* control: blanks before the comma, a trailing ";" */
	{
		const char *sp = "v=TLSRPTv1;rua=mailto:a@x.test , https://r.test/tls;";

		CHECK(tlsrpt_rua_parse(sp, strlen(sp), &r) == 0);
		CHECK(r.n == 2);
		CHECK_STREQ(r.uri[0], "mailto:a@x.test");
		CHECK_STREQ(r.uri[1], "https://r.test/tls");
	}
	{
		size_t n = TLSRPT_TXT_MAX + 10;
		char *big = xmalloc(n);

		memset(big, 'a', n);
		memcpy(big, "v=TLSRPTv1;rua=mailto:a@b.test;", 31);
		CHECK(tlsrpt_rua_parse(big, n, &r) < 0);
		free(big);
	}
}

static void test_txt_pick(void)
{
	static const uint8_t spf[] = "\x0bv=spf1 -all";
	static const uint8_t two[] = "\x0bv=TLSRPTv1;\x13rua=mailto:a@b.test";
	static const uint8_t bad[] = "\x30v=TLSRPTv1;";
	const uint8_t *rr[3] = { spf, two, two };
	size_t len[3] = { sizeof(spf) - 1, sizeof(two) - 1, sizeof(two) - 1 };
	char out[TLSRPT_TXT_MAX + 1];

	CHECK(tlsrpt_txt_pick(rr, len, 2, out, sizeof(out)) == 1);
	CHECK_STREQ(out, "v=TLSRPTv1;rua=mailto:a@b.test");
	CHECK(tlsrpt_txt_pick(rr, len, 1, out, sizeof(out)) == 0);
	CHECK(tlsrpt_txt_pick(rr, len, 3, out, sizeof(out)) == -1);	/* two records */
	rr[0] = bad;
	len[0] = sizeof(bad) - 1;
	CHECK(tlsrpt_txt_pick(rr, len, 1, out, sizeof(out)) == 0);	/* cut string */
}

static const struct tlsrpt_meta meta = {
	.organization = "Example Org", .contact = "tls@relay.test", .submitter = "relay.test",
	.from = "postmaster@relay.test", .domain = "a.test", .day = "2026-12-04",
};

static void test_report_json(void)
{
	struct tlsrpt_row rows[4] = {
		row("a.test", "mx1.a.test", TLSRPT_SUCCESS, "", 3),
		row("a.test", "mx2.a.test", TLSRPT_TLSA_INVALID, "192.0.2.2", 2),
		row("a.test", "mx2.a.test", TLSRPT_SUCCESS, "", 1),
		row("a.test", "mx1.a.test", TLSRPT_STARTTLS_NOT_SUPPORTED, "192.0.2.1", 4),
	};
	char *id, *s;
	json_t *j, *p, *f;

	rows[1].policy_type = rows[2].policy_type = "tlsa";
	rows[1].policy_string = "3 1 1 ab\n3 1 1 cd";
	s = tlsrpt_report_json(&meta, rows, 4, &id);
	CHECK_STREQ(id, "2026-12-04_a.test@relay.test");
	j = json_loads(s, 0, NULL);
	CHECK(j != NULL);
	CHECK_STREQ(json_string_value(json_object_get(j, "organization-name")), "Example Org");
	CHECK_STREQ(json_string_value(json_object_get(j, "contact-info")), "tls@relay.test");
	CHECK_STREQ(json_string_value(json_object_get(j, "report-id")), id);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(j, "date-range"),
						      "start-datetime")), "2026-12-04T00:00:00Z");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(j, "date-range"),
						      "end-datetime")), "2026-12-04T23:59:59Z");
	CHECK(json_array_size(json_object_get(j, "policies")) == 2);
	/* sorted: no-policy-found before tlsa */
	p = json_array_get(json_object_get(j, "policies"), 0);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(p, "policy"), "policy-type")),
		    "no-policy-found");
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(p, "policy"), "mx-host")),
		    "mx1.a.test");
	CHECK(json_integer_value(json_object_get(json_object_get(p, "summary"),
						 "total-successful-session-count")) == 3);
	CHECK(json_integer_value(json_object_get(json_object_get(p, "summary"),
						 "total-failure-session-count")) == 4);
	f = json_array_get(json_object_get(p, "failure-details"), 0);
	CHECK_STREQ(json_string_value(json_object_get(f, "result-type")), "starttls-not-supported");
	CHECK_STREQ(json_string_value(json_object_get(f, "sending-mta-ip")), "127.0.0.1");
	CHECK_STREQ(json_string_value(json_object_get(f, "receiving-ip")), "192.0.2.1");
	CHECK_STREQ(json_string_value(json_object_get(f, "receiving-mx-hostname")), "mx1.a.test");
	CHECK(json_integer_value(json_object_get(f, "failed-session-count")) == 4);
	p = json_array_get(json_object_get(j, "policies"), 1);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(p, "policy"), "policy-type")),
		    "tlsa");
	CHECK(json_array_size(json_object_get(json_object_get(p, "policy"), "policy-string")) == 2);
	CHECK_STREQ(json_string_value(json_object_get(json_object_get(p, "policy"),
						      "policy-domain")), "a.test");
	CHECK(json_integer_value(json_object_get(json_object_get(p, "summary"),
						 "total-successful-session-count")) == 1);
	CHECK(json_integer_value(json_object_get(json_object_get(p, "summary"),
						 "total-failure-session-count")) == 2);
	json_decref(j);
	free(id);
	free(s);
}

static void test_gzip_and_mail(void)
{
	const char *json = "{\"organization-name\":\"Example Org\"}";
	size_t gzlen, len, outlen = 256;
	unsigned char *gz = tlsrpt_gzip(json, strlen(json), &gzlen), out[256];
	z_stream z = { 0 };
	char *fname = tlsrpt_filename(&meta), *msg;

	CHECK(gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b);
	CHECK(inflateInit2(&z, 15 + 16) == Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = out;
	z.avail_out = (uInt)outlen;
	CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
	CHECK(z.total_out == strlen(json) && memcmp(out, json, z.total_out) == 0);
	inflateEnd(&z);
	/* 2026-12-04T00:00:00Z is 1796342400 */
	CHECK_STREQ(fname, "relay.test!a.test!1796342400!1796428799.json.gz");
	msg = tlsrpt_mail(&meta, "2026-12-04_a.test@relay.test", "rpt@b.test", gz, gzlen, &len);
	CHECK(strlen(msg) == len);
	CHECK(strstr(msg, "Subject: Report Domain: a.test Submitter: relay.test "
		     "Report-ID: <2026-12-04_a.test@relay.test>\r\n") != NULL);
	CHECK(strstr(msg, "TLS-Report-Domain: a.test\r\n") != NULL);
	CHECK(strstr(msg, "TLS-Report-Submitter: relay.test\r\n") != NULL);
	CHECK(strstr(msg, "multipart/report; report-type=\"tlsrpt\"") != NULL);
	CHECK(strstr(msg, "Content-Type: application/tlsrpt+gzip\r\n") != NULL);
	CHECK(strstr(msg, fname) != NULL);
	free(msg);
	free(fname);
	free(gz);
}

TEST_MAIN(test_result_names, test_cert_result, test_policy_of, test_policy_of_sts, test_counts_flush_in_batches, test_rua_parse,
	  test_txt_pick, test_report_json, test_gzip_and_mail)
