/*
 * test_keydir.c - the key directory store, its pending marks, the zone file fragment and
 * the WKD tree, with copies inserted directly (as keys_accept would hand them over); and
 * the words for a DNS server's refusal and the TSIG chain of a zone transfer, from messages
 * built with ldns the way Knot, BIND and PowerDNS send them.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "account.h"
#include "config.h"
#include "keydir/keydir.h"
#include "schema.h"
#include "unit.h"
#include "xmalloc.h"

struct env {
	char dir[64];
	char url[96];
	struct pw_config cfg;
	struct db *db;
	struct keydir kd;
};

static void env_open(struct env *e)
{
	char *err = NULL;

	memset(e, 0, sizeof(*e));
	strcpy(e->dir, "/tmp/pw-keydir-XXXXXX");
	CHECK(mkdtemp(e->dir) != NULL);
	e->cfg.server.state_dir = e->dir;
	e->cfg.keydir.zones = "";
	e->cfg.keydir.zone_file = "";
	e->cfg.keydir.wkd_dir = "";
	e->cfg.keydir.ttl = 3600;
	e->cfg.keydir.retry_interval = 300;
	e->cfg.keydir.expiry_margin = 7 * 86400;
	snprintf(e->url, sizeof(e->url), "sqlite:%s/postwarden.db", e->dir);
	e->cfg.database.url = e->url;
	e->db = schema_open(&e->cfg, DB_OPEN_MIGRATE, &err);
	CHECK(e->db != NULL);
	e->kd = (struct keydir){ .cfg = &e->cfg, .db = e->db };
}

static void env_close(struct env *e)
{
	char *cmd = xasprintf("rm -rf '%s'", e->dir);

	db_close(e->db);
	CHECK(system(cmd) == 0);
	free(cmd);
}

static int64_t scalar(struct db *db, const char *sql)
{
	struct db_stmt *st = db_prepare(db, sql);
	int64_t v = -1;

	if (db_step_row(db, st))
		v = db_col_int(st, 0);
	db_finalize(st);
	return v;
}

/* A copy as keydir_publish would store it, with made-up names and data. */
static void put(struct env *e, int64_t account, const char *addr, const char *fpr, bool smime,
		const char *owner, const char *owner_lc, const char *hash, const char *data,
		int64_t expires)
{
	struct keydir_key k = {
		.address = (char *)addr, .kind = smime ? KEYS_SMIME : KEYS_OPENPGP,
		.fingerprint = (char *)fpr, .algorithm = "EDDSA", .bits = 255, .expires = expires,
		.data = (uint8_t *)data, .len = strlen(data),
		.rrtype = smime ? KEYDIR_RR_SMIMEA : KEYDIR_RR_OPENPGPKEY,
		.owner = (char *)owner, .owner_lc = (char *)owner_lc,
		.wkd_domain = smime ? "" : "example.org", .wkd_hash = (char *)hash,
	};

	CHECK(keydir_store_insert(e->db, account, &k, NULL, 0));
}

static char *slurp(const char *path)
{
	size_t len;

	return (char *)keydir_file_read(path, 1 << 20, &len);
}

static void test_names(void)
{
	struct pw_config cfg = { 0 };
	char *z;

	cfg.keydir.zones = "";
	z = keydir_zone_of(&cfg, "Example.ORG");
	CHECK_STREQ(z, "example.org");
	free(z);
	cfg.keydir.zones = "example.org, mail.example.org., other.net";
	z = keydir_zone_of(&cfg, "a.mail.example.org");
	CHECK_STREQ(z, "mail.example.org");
	free(z);
	z = keydir_zone_of(&cfg, "example.org");
	CHECK_STREQ(z, "example.org");
	free(z);
	CHECK(keydir_zone_of(&cfg, "badexample.org") == NULL);
	CHECK(keydir_zone_of(&cfg, "example.com") == NULL);
	CHECK_STREQ(keydir_owner_domain("abc._openpgpkey.example.org"), "example.org");
	CHECK(keydir_owner_domain("abc._openpgpkey") == NULL);
}

/* Inserting and deleting rows marks exactly the affected names; a re-mark wins over a reader. */
static void test_pending_marks(void)
{
	struct env e;
	struct keydir_pending *p;
	size_t n;

	env_open(&e);
	CHECK(account_add(e.db, "anna@example.org", NULL, 0, false, &(char *){ NULL }) == 0);
	put(&e, 1, "Anna@example.org", "F1", false, "aa._openpgpkey.example.org",
	    "bb._openpgpkey.example.org", "hash1", "KEY1", 0);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_pending") == 3);
	p = keydir_store_pending(e.db, false, 0, "", -1, 10, &n);
	CHECK(n == 3);
	/* Ordered by (owner, rrtype): both DNS names, then the WKD file. */
	CHECK_STREQ(p[0].owner, "aa._openpgpkey.example.org");
	CHECK(p[0].rrtype == KEYDIR_RR_OPENPGPKEY);
	CHECK_STREQ(p[2].owner, "example.org/hash1");
	CHECK(p[2].rrtype == KEYDIR_WKD);
	/* A change after the read: the mark must survive the reader's "done". */
	keydir_store_mark(e.db, p[0].owner, p[0].rrtype);
	keydir_store_pending_done(e.db, &p[0]);
	keydir_store_pending_done(e.db, &p[1]);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_pending") == 2);
	keydir_store_pending_failed(e.db, &p[2], "disk full", 1000);
	keydir_pending_free(p, n);
	/* Not due before 1000, but "all" sees it. */
	p = keydir_store_pending(e.db, false, 999, "", -1, 10, &n);
	CHECK(n == 1);
	keydir_pending_free(p, n);
	p = keydir_store_pending(e.db, true, 999, "", -1, 10, &n);
	CHECK(n == 2);
	keydir_pending_free(p, n);
	/* The cursor continues after the last name seen. */
	p = keydir_store_pending(e.db, true, 0, "aa._openpgpkey.example.org", KEYDIR_RR_OPENPGPKEY,
				 10, &n);
	CHECK(n == 1 && strcmp(p[0].owner, "example.org/hash1") == 0);
	keydir_pending_free(p, n);
	env_close(&e);
}

/* Zone file mode and WKD: publish, second key, unpublish, account deletion. */
static void test_zone_file_and_wkd(void)
{
	struct env e;
	struct keydir_report rep = { 0 };
	char *zf, *wkd, *text, *pol;
	struct stat sb;
	char *err = NULL;

	env_open(&e);
	zf = keydir_zone_file(&e.cfg);
	wkd = xasprintf("%s/wkd/.well-known/openpgpkey/example.org/hu/hash1", e.dir);
	pol = xasprintf("%s/wkd/.well-known/openpgpkey/example.org/policy", e.dir);
	CHECK(account_add(e.db, "anna@example.org", NULL, 0, false, &err) == 0);
	put(&e, 1, "anna@example.org", "F1", false, "aa._openpgpkey.example.org", "", "hash1",
	    "\x01\x02\x03", 0);
	put(&e, 1, "anna@example.org", "C1", true, "aa._smimecert.example.org", "", "", "\x30\x82",
	    0);
	CHECK(keydir_reconcile(&e.kd, false, 100, &rep) == 0);
	CHECK(rep.failed == 0 && rep.done == 3);
	text = slurp(zf);
	CHECK(text && strstr(text, "aa._openpgpkey.example.org. 3600 IN OPENPGPKEY AQID\n"));
	CHECK(text && strstr(text, "aa._smimecert.example.org. 3600 IN SMIMEA 3 0 0 3082\n"));
	free(text);
	text = slurp(wkd);
	CHECK(text && memcmp(text, "\x01\x02\x03", 3) == 0);
	free(text);
	CHECK(stat(pol, &sb) == 0 && sb.st_size == 0 && (sb.st_mode & 0777) == 0644);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_pending") == 0);
	keydir_report_free(&rep);

	/* A second key for the same address: the WKD file holds both, concatenated. */
	put(&e, 1, "anna@example.org", "F2", false, "aa._openpgpkey.example.org", "", "hash1",
	    "\x04\x05", 0);
	CHECK(keydir_reconcile(&e.kd, false, 100, &rep) == 0);
	keydir_report_free(&rep);
	text = slurp(wkd);
	CHECK(text && memcmp(text, "\x01\x02\x03\x04\x05", 5) == 0);
	free(text);

	CHECK(keydir_unpublish(&e.kd, "ANNA@example.org", "f1") == 1);
	CHECK(keydir_unpublish(&e.kd, "nobody@example.org", NULL) == 0);
	CHECK(keydir_reconcile(&e.kd, false, 100, &rep) == 0);
	keydir_report_free(&rep);
	text = slurp(zf);
	CHECK(text && !strstr(text, "AQID") && strstr(text, "OPENPGPKEY BAU=\n"));
	free(text);

	/* Deleting the account deletes its keys (cascade), and the triggers mark their names. */
	CHECK(account_del(e.db, "anna@example.org", &err) == 0);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_keys") == 0);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_pending") == 3);
	CHECK(keydir_reconcile(&e.kd, false, 100, &rep) == 0);
	keydir_report_free(&rep);
	text = slurp(zf);
	CHECK(text && !strstr(text, "IN OPENPGPKEY") && !strstr(text, "IN SMIMEA"));
	free(text);
	CHECK(access(wkd, F_OK) != 0);
	free(zf);
	free(wkd);
	free(pol);
	env_close(&e);
}

/* sync rewrites the WKD tree: stray files go, missing ones come back. */
static void test_wkd_sync(void)
{
	struct env e;
	struct keydir_report rep = { 0 };
	char *err = NULL, *stray, *wkd;

	env_open(&e);
	CHECK(account_add(e.db, "anna@example.org", NULL, 0, false, &err) == 0);
	put(&e, 1, "anna@example.org", "F1", false, "aa._openpgpkey.example.org", "", "hash1",
	    "KEY", 0);
	stray = xasprintf("%s/wkd/.well-known/openpgpkey/example.org/hu/stray", e.dir);
	wkd = xasprintf("%s/wkd/.well-known/openpgpkey/example.org/hu/hash1", e.dir);
	CHECK(keydir_file_write(stray, "x", 1, &err) == 0);
	CHECK(keydir_sync(&e.kd, 100, &rep) == 0);
	CHECK(access(stray, F_OK) != 0 && access(wkd, F_OK) == 0);
	bool deleted = false, written = false;
	for (size_t i = 0; i < rep.nchanges; i++) {
		deleted |= strcmp(rep.changes[i].action, "delete") == 0 &&
			   strcmp(rep.changes[i].name, "example.org/stray") == 0;
		written |= strcmp(rep.changes[i].action, "publish") == 0 ||
			   strcmp(rep.changes[i].action, "write") == 0;
	}
	CHECK(deleted && written);
	keydir_report_free(&rep);
	/* Nothing left to do: a second sync changes nothing. */
	CHECK(keydir_sync(&e.kd, 100, &rep) == 0);
	CHECK(rep.nchanges == 0);
	keydir_report_free(&rep);
	free(stray);
	free(wkd);
	env_close(&e);
}

static void test_expire(void)
{
	struct env e;
	char *err = NULL;

	env_open(&e);
	CHECK(account_add(e.db, "anna@example.org", NULL, 0, false, &err) == 0);
	put(&e, 1, "anna@example.org", "F1", false, "aa._openpgpkey.example.org", "", "h1", "K", 0);
	put(&e, 1, "anna@example.org", "F2", false, "aa._openpgpkey.example.org", "", "h1", "L",
	    1000000);
	put(&e, 1, "anna@example.org", "F3", false, "aa._openpgpkey.example.org", "", "h1", "M",
	    5000000);
	/* margin 7 days = 604800: F2 is within it at 400000, F3 not. */
	CHECK(keydir_expire(&e.kd, 400000) == 1);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_keys WHERE fingerprint = 'F2'") == 0);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_keys") == 2);
	env_close(&e);
}

/* An unreachable DNS server: reconcile fails, names stay pending with the error. */
static void test_dns_unreachable(void)
{
	struct env e;
	struct keydir_report rep = { 0 };
	char *err = NULL;

	env_open(&e);
	e.cfg.keydir.dns_server.host = "127.0.0.1";
	e.cfg.keydir.dns_server.port = 9;	/* discard: nothing listens */
	e.cfg.keydir.tsig_algorithm = "hmac-sha256";
	CHECK(account_add(e.db, "anna@example.org", NULL, 0, false, &err) == 0);
	put(&e, 1, "anna@example.org", "F1", false, "aa._openpgpkey.example.org", "", "h1", "K", 0);
	CHECK(keydir_reconcile(&e.kd, false, 100, &rep) < 0);
	CHECK(rep.failed == 1 && rep.error && strstr(rep.error, "cannot connect"));
	CHECK(scalar(e.db, "SELECT next_attempt FROM keydir_pending WHERE rrtype = 61") == 400);
	CHECK(scalar(e.db, "SELECT count(*) FROM keydir_pending WHERE rrtype = 0") == 0);
	keydir_report_free(&rep);
	/* Not due yet: nothing is tried. */
	CHECK(keydir_reconcile(&e.kd, false, 200, &rep) == 0 && rep.done == 0);
	keydir_report_free(&rep);
	env_close(&e);
}

static void test_update_size(void)
{
	struct keydir_rdata rd[2] = { { (uint8_t *)"abc", 1000 }, { (uint8_t *)"abc", 2000 } };
	struct keydir_rrset set = { "aa._openpgpkey.example.org", 61, rd, 2 };
	size_t per = strlen(set.owner) + 12;

	CHECK(keydir_dns_rrset_size(&set) == 3 * per + 3000);
	set.n = 0;
	CHECK(keydir_dns_rrset_size(&set) == per);
}

#define T_KEY "pw-keydir"
#define T_SECRET "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
#define T_OTHER "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVy"

/* An UPDATE for keys.test signed with T_KEY, as keydir_dns_update sends it. */
static ldns_pkt *signed_query(void)
{
	ldns_rdf *zone = ldns_dname_new_frm_str("keys.test.");
	ldns_rr_list *up = ldns_rr_list_new();
	ldns_pkt *q = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, NULL, up, NULL);

	CHECK(q != NULL);
	ldns_rr_list_free(up);
	ldns_pkt_set_id(q, 4711);
	CHECK(ldns_pkt_tsig_sign(q, T_KEY, T_SECRET, 300, "hmac-sha256", NULL) == LDNS_STATUS_OK);
	return q;
}

static const ldns_rdf *query_mac(const ldns_pkt *q)
{
	return ldns_rr_rdf(ldns_pkt_tsig(q), 3);
}

/* A reply to q with rcode rc; signed with secret over q's MAC unless secret is NULL; with
 * TSIG error terr (a server's TSIG record that only carries the error) unless 0. */
static uint8_t *reply(const ldns_pkt *q, ldns_pkt_rcode rc, const char *secret, unsigned terr,
		      size_t *len)
{
	ldns_pkt *r = ldns_pkt_new();
	uint8_t *wire = NULL;

	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, ldns_pkt_get_opcode(q));
	ldns_pkt_set_rcode(r, (uint8_t)rc);
	ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION,
			 ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
	if (secret || terr)
		CHECK(ldns_pkt_tsig_sign(r, T_KEY, secret ? secret : T_OTHER, 300, "hmac-sha256",
					 query_mac(q)) == LDNS_STATUS_OK);
	if (terr)
		ldns_rdf_deep_free(ldns_rr_set_rdf(ldns_pkt_tsig(r),
						   ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16,
									 (uint16_t)terr), 5));
	CHECK(ldns_pkt2wire(&wire, r, len) == LDNS_STATUS_OK);
	ldns_pkt_free(r);
	return wire;
}

/* The words for the reply; mac from q unless q is NULL. */
static char *refusal(const struct keydir_conf *kc, const ldns_pkt *q, const uint8_t *wire,
		     size_t len)
{
	const ldns_rdf *m = q ? query_mac(q) : NULL;

	return keydir_dns_refusal(kc, "keys.test", wire, len, m ? ldns_rdf_data(m) : NULL,
				  m ? ldns_rdf_size(m) : 0);
}

static bool says(const struct keydir_conf *kc, const ldns_pkt *q, ldns_pkt_rcode rc,
		 const char *secret, unsigned terr, const char *want, const char *not)
{
	size_t len = 0;
	uint8_t *wire = reply(q, rc, secret, terr, &len);
	char *t = refusal(kc, q, wire, len);
	bool ok = strstr(t, want) != NULL && (not == NULL || strstr(t, not) == NULL);

	if (!ok)
		fprintf(stderr, "refusal: \"%s\" lacks \"%s\" or has \"%s\"\n", t, want,
			not ? not : "");
	free(t);
	free(wire);
	return ok;
}

/*
 * A reply with its TSIG record twice (RFC 8945 allows one, last) is not a message: ldns
 * would keep one and lose the other. Control: the same reply with one TSIG is read.
 */
static void test_two_tsigs(const struct keydir_conf *kc, const ldns_pkt *q)
{
	size_t len = 0, qend = 12 + 11 + 4;	/* header, keys.test, type and class */
	uint8_t *wire = reply(q, LDNS_RCODE_REFUSED, T_SECRET, 0, &len);
	uint8_t *two = xmalloc(2 * len - qend);
	char *t;

	CHECK(wire[11] == 1 && len > qend);
	memcpy(two, wire, len);
	memcpy(two + len, wire + qend, len - qend);
	two[11] = 2;
	t = refusal(kc, q, two, 2 * len - qend);
	CHECK(strcmp(t, "the server's reply is not a DNS message") == 0);
	free(t);
	t = refusal(kc, q, wire, len);
	CHECK(strstr(t, "accepted key pw-keydir") != NULL);
	free(t);
	free(two);
	free(wire);
}

/* How each server's "no" is put into words. */
static void test_refusal_words(void)
{
	struct keydir_conf kc = { .tsig_name = T_KEY, .tsig_algorithm = "hmac-sha256",
				  .tsig_secret = T_SECRET };
	struct keydir_conf nokey = { .tsig_name = "", .tsig_secret = "" };
	ldns_pkt *q = signed_query();
	uint8_t junk[12] = { 0 };
	char *t;

	/* Knot and BIND: a wrong secret is NOTAUTH with TSIG BADSIG, an unknown key BADKEY. */
	CHECK(says(&kc, q, LDNS_RCODE_NOTAUTH, NULL, 16,
		   "NOTAUTH (TSIG BADSIG 16): the server does not accept TSIG key pw-keydir", NULL));
	CHECK(says(&kc, q, LDNS_RCODE_NOTAUTH, NULL, 17, "(TSIG BADKEY 17)", NULL));
	CHECK(says(&kc, q, LDNS_RCODE_NOTAUTH, NULL, 18, "clocks", NULL));
	/* PowerDNS: a plain unsigned REFUSED (update) or NOTAUTH (transfer) for a bad key. */
	CHECK(says(&kc, q, LDNS_RCODE_REFUSED, NULL, 0,
		   "REFUSED, unsigned: the server does not accept TSIG key pw-keydir", NULL));
	CHECK(says(&kc, q, LDNS_RCODE_NOTAUTH, NULL, 0, "or does not serve zone keys.test", NULL));
	/* BIND's update-policy: REFUSED, signed with our key: the key is not in doubt. */
	CHECK(says(&kc, q, LDNS_RCODE_REFUSED, T_SECRET, 0,
		   "REFUSED: the server accepted key pw-keydir, but its policy", "does not accept"));
	CHECK(says(&kc, q, LDNS_RCODE_NOTAUTH, T_SECRET, 0,
		   "NOTAUTH: the server is not authoritative for zone keys.test", "TSIG key"));
	CHECK(says(&kc, q, LDNS_RCODE_NOTZONE, T_SECRET, 0, "not inside zone keys.test", NULL));
	/* A signature by someone else is not taken for the server's. */
	CHECK(says(&kc, q, LDNS_RCODE_REFUSED, T_OTHER, 0, "does not verify with key pw-keydir",
		   "accepted"));
	/* Without TSIG (control): no key is blamed. */
	CHECK(says(&nokey, q, LDNS_RCODE_REFUSED, NULL, 0,
		   "REFUSED: the server does not allow this without a TSIG key", "pw-keydir"));
	CHECK(says(&kc, q, LDNS_RCODE_FORMERR, T_SECRET, 0, "FORMERR", ":"));
	/* Not a message, or too large for one. */
	t = refusal(&kc, q, junk, 3);
	CHECK(strcmp(t, "the server's reply is not a DNS message") == 0);
	free(t);
	t = refusal(&kc, q, junk, 70000);
	CHECK(strcmp(t, "the server's reply is not a DNS message") == 0);
	free(t);
	test_two_tsigs(&kc, q);
	ldns_pkt_free(q);
}

/* One message of a transfer answering q: rrs (zone-file lines), signed with secret over
 * mac (NULL: unsigned); timers: a later message, timers only (RFC 8945 5.3.1). */
static ldns_pkt *axfr_msg(const ldns_pkt *q, const char *const *rrs, const char *secret,
			  const ldns_rdf *mac, bool timers)
{
	ldns_pkt *r = ldns_pkt_new();

	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_aa(r, true);
	for (; *rrs; rrs++) {
		ldns_rr *rr = NULL;

		CHECK(ldns_rr_new_frm_str(&rr, *rrs, 0, NULL, NULL) == LDNS_STATUS_OK);
		ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
	}
	if (secret)
		CHECK(ldns_pkt_tsig_sign_next(r, T_KEY, secret, 300, "hmac-sha256", mac,
					      timers) == LDNS_STATUS_OK);
	return r;
}

static void count_record(void *arg, const char *owner, uint16_t type, const uint8_t *rdata,
			 size_t len)
{
	CHECK(strcmp(owner, "abc._openpgpkey.keys.test") == 0 && type == 61 && len == 4 &&
	      memcmp(rdata, "\x01\x02\x03\x04", 4) == 0);
	(*(int *)arg)++;
}

/* Feed msgs[] (unsigned messages to sign in a chain, or ready ones) to a transfer of q;
 * returns the last result, *records the records handed on, *err the last error. */
static int axfr_run(const struct keydir_conf *kc, const ldns_pkt *q, ldns_pkt **msgs, size_t n,
		    int *records, char **err)
{
	const ldns_rdf *m = query_mac(q);
	struct keydir_axfr x = { .id = ldns_pkt_id(q), .mac = xmemdup(ldns_rdf_data(m),
								       ldns_rdf_size(m)),
				 .mac_len = ldns_rdf_size(m) };
	int rc = 0;

	*records = 0;
	*err = NULL;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t *wire = NULL;
		size_t len = 0;

		CHECK(ldns_pkt2wire(&wire, msgs[i], &len) == LDNS_STATUS_OK);
		rc = keydir_dns_axfr_msg(kc, "keys.test", &x, wire, len, count_record, records, err);
		free(wire);
	}
	free(x.mac);
	return rc;
}

/*
 * A transfer in three messages, each signed over the previous one's MAC (the first over
 * the query's), as Knot, BIND and PowerDNS send it; and the ways a chain breaks.
 */
static void test_axfr_chain(void)
{
	static const char *const first[] = {
		"keys.test. 2 IN SOA ns.keys.test. h.keys.test. 1 60 60 600 2",
		"abc._openpgpkey.keys.test. 60 IN OPENPGPKEY AQIDBA==", NULL };
	static const char *const middle[] = {
		"ABC._openpgpkey.keys.test. 60 IN OPENPGPKEY AQIDBA==", NULL };
	static const char *const last[] = {
		"keys.test. 2 IN SOA ns.keys.test. h.keys.test. 1 60 60 600 2", NULL };
	struct keydir_conf kc = { .dns_server = { .host = "192.0.2.53" }, .tsig_name = T_KEY,
				  .tsig_algorithm = "hmac-sha256", .tsig_secret = T_SECRET };
	ldns_rdf *zone = ldns_dname_new_frm_str("keys.test.");
	ldns_pkt *q = ldns_pkt_query_new(zone, LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN, 0);
	ldns_pkt *m[3];
	int records;
	char *err;

	ldns_pkt_set_id(q, 815);
	CHECK(ldns_pkt_tsig_sign(q, T_KEY, T_SECRET, 300, "hmac-sha256", NULL) == LDNS_STATUS_OK);
	m[0] = axfr_msg(q, first, T_SECRET, query_mac(q), false);
	m[1] = axfr_msg(q, middle, T_SECRET, ldns_rr_rdf(ldns_pkt_tsig(m[0]), 3), true);
	m[2] = axfr_msg(q, last, T_SECRET, ldns_rr_rdf(ldns_pkt_tsig(m[1]), 3), true);
	CHECK(axfr_run(&kc, q, m, 3, &records, &err) == 1 && err == NULL);
	CHECK(records == 2);	/* owners lower-cased, SOAs not handed on */

	/* Control: the middle message unsigned, or signed over the query's MAC again. */
	ldns_pkt_free(m[1]);
	m[1] = axfr_msg(q, middle, NULL, NULL, false);
	CHECK(axfr_run(&kc, q, m, 3, &records, &err) == -1 && records == 1);
	CHECK(err && strstr(err, "does not carry a valid TSIG signature of key pw-keydir"));
	free(err);
	ldns_pkt_free(m[1]);
	m[1] = axfr_msg(q, middle, T_SECRET, query_mac(q), true);
	CHECK(axfr_run(&kc, q, m, 3, &records, &err) == -1 && records == 1);
	free(err);
	/* A transfer that stops before its second SOA is not complete. */
	CHECK(axfr_run(&kc, q, m, 1, &records, &err) == 0 && err == NULL);
	for (int i = 0; i < 3; i++)
		ldns_pkt_free(m[i]);
	ldns_pkt_free(q);
}

TEST_MAIN(test_names, test_pending_marks, test_zone_file_and_wkd, test_wkd_sync, test_expire,
	  test_dns_unreachable, test_update_size, test_refusal_words, test_axfr_chain)
