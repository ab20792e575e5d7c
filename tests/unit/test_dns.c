/*
 * test_dns.c - RDATA parsers (names, MX, TLSA, addresses), the mapping of libunbound results
 * to status and DNSSEC security, and real lookups on the event loop: the test starts knotd
 * with a signed zone (secure.test), an unsigned one (insecure.test) and an unsigned one that
 * a trust anchor claims is signed (bogus.test), and points libunbound at them.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns.h"
#include "xmalloc.h"
#include "unit.h"

/* An answer of type qtype holding the given RDATA blobs. */
static struct dns_answer *answer_new(int qtype, size_t n, const uint8_t *const *data,
				     const size_t *len)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	a->qname = xstrdup("example.test");
	a->qtype = qtype;
	a->status = n ? DNS_OK : DNS_NODATA;
	a->nrr = n;
	a->rrs = xcalloc(n ? n : 1, sizeof(*a->rrs));
	for (size_t i = 0; i < n; i++) {
		a->rrs[i].data = xmemdup(data[i], len[i] ? len[i] : 1);
		a->rrs[i].len = len[i];
	}
	return a;
}

/* Build MX RDATA "pref host" from a text name (labels split at dots). */
static size_t mx_rdata(uint8_t *out, uint16_t pref, const char *host)
{
	size_t o = 2;

	out[0] = (uint8_t)(pref >> 8);
	out[1] = (uint8_t)pref;
	while (*host != '\0' && strcmp(host, ".") != 0) {
		const char *dot = strchr(host, '.');
		size_t l = dot ? (size_t)(dot - host) : strlen(host);

		out[o++] = (uint8_t)l;
		memcpy(out + o, host, l);
		o += l;
		host += l + (dot ? 1 : 0);
	}
	out[o++] = 0;
	return o;
}

static void test_name_from_wire(void)
{
	static const uint8_t ok[] = "\x02Mx\x07" "Example\x04test";	/* + implicit NUL */
	static const uint8_t root[] = { 0 };
	static const uint8_t ptr[] = { 0x02, 'm', 'x', 0xc0, 0x0c };
	static const uint8_t trunc[] = { 0x05, 'a', 'b' };
	static const uint8_t noend[] = { 0x01, 'a' };
	static const uint8_t odd[] = { 0x03, 'a', '.', 'b', 0x02, ' ', 0xff, 0 };
	static const uint8_t ext[] = { 0x41, 'a', 0 };	/* label type 01: not allowed */
	uint8_t big[300];
	size_t used = 0;
	char *s;

	s = dns_name_from_wire(ok, sizeof(ok), &used);
	CHECK_STREQ(s, "mx.example.test");
	CHECK(used == sizeof(ok));
	free(s);
	s = dns_name_from_wire(root, 1, &used);
	CHECK_STREQ(s, ".");
	CHECK(used == 1);
	free(s);
	CHECK(dns_name_from_wire(ptr, sizeof(ptr), &used) == NULL);
	CHECK(dns_name_from_wire(trunc, sizeof(trunc), &used) == NULL);
	CHECK(dns_name_from_wire(noend, sizeof(noend), &used) == NULL);
	CHECK(dns_name_from_wire(ext, sizeof(ext), &used) == NULL);
	CHECK(dns_name_from_wire(root, 0, &used) == NULL);
	s = dns_name_from_wire(odd, sizeof(odd), NULL);
	CHECK_STREQ(s, "a\\.b.\\032\\255");
	free(s);

	/* 4 labels of 63 + terminator = 257 bytes: too long; 3 x 63 + 61 + 1 = 255 is fine */
	memset(big, 'a', sizeof(big));
	for (size_t i = 0; i < 4; i++)
		big[i * 64] = 63;
	big[256] = 0;
	CHECK(dns_name_from_wire(big, sizeof(big), &used) == NULL);
	big[192] = 61;
	big[254] = 0;
	s = dns_name_from_wire(big, sizeof(big), &used);
	CHECK(s != NULL && strlen(s) == 63 * 3 + 61 + 3);
	CHECK(used == 255);
	free(s);
	big[192] = 62;
	big[255] = 0;
	CHECK(dns_name_from_wire(big, sizeof(big), &used) == NULL);
}

static void test_mx_sort_shuffle(void)
{
	uint8_t r[4][64];
	size_t len[4];
	const uint8_t *d[4] = { r[0], r[1], r[2], r[3] };
	int first_a = 0, first_b = 0;

	len[0] = mx_rdata(r[0], 20, "backup.example.test.");
	len[1] = mx_rdata(r[1], 10, "A.example.test");
	len[2] = mx_rdata(r[2], 10, "b.example.test");
	len[3] = mx_rdata(r[3], 5, "first.example.test");
	for (int round = 0; round < 200; round++) {
		struct dns_answer *a = answer_new(DNS_RR_MX, 4, d, len);
		struct dns_mx *mx;
		bool null_mx = true;
		int n = dns_answer_mx(a, &mx, &null_mx);

		CHECK(n == 4);
		CHECK(!null_mx);
		if (n == 4) {
			CHECK(mx[0].pref == 5 && mx[1].pref == 10 && mx[2].pref == 10 &&
			      mx[3].pref == 20);
			CHECK_STREQ(mx[0].host, "first.example.test");
			CHECK_STREQ(mx[3].host, "backup.example.test");
			if (strcmp(mx[1].host, "a.example.test") == 0)
				first_a++;
			else if (strcmp(mx[1].host, "b.example.test") == 0)
				first_b++;
		}
		dns_mx_free(mx, (size_t)n);
		dns_answer_free(a);
	}
	/* both orders of the equal pair occur, roughly evenly (p of failing < 1e-9) */
	CHECK(first_a + first_b == 200);
	CHECK(first_a > 50 && first_b > 50);
}

static void test_mx_null_and_malformed(void)
{
	uint8_t r[2][64];
	size_t len[2];
	const uint8_t *d[2] = { r[0], r[1] };
	struct dns_answer *a;
	struct dns_mx *mx;
	bool null_mx;

	len[0] = mx_rdata(r[0], 0, ".");
	a = answer_new(DNS_RR_MX, 1, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == 0);
	CHECK(null_mx && mx == NULL);
	dns_answer_free(a);

	/* "0 ." next to a real MX is not a null MX: the root target stays as "." */
	len[1] = mx_rdata(r[1], 10, "mx.example.test");
	a = answer_new(DNS_RR_MX, 2, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == 2);
	CHECK(!null_mx);
	CHECK_STREQ(mx[0].host, ".");
	dns_mx_free(mx, 2);
	dns_answer_free(a);

	/* "10 ." alone is not RFC 7505's null MX either */
	len[0] = mx_rdata(r[0], 10, ".");
	a = answer_new(DNS_RR_MX, 1, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == 1 && !null_mx);
	dns_mx_free(mx, 1);
	dns_answer_free(a);

	/* trailing garbage after the name */
	len[0] = mx_rdata(r[0], 10, "mx.example.test");
	r[0][len[0]++] = 'x';
	a = answer_new(DNS_RR_MX, 2, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == -1);
	CHECK(mx == NULL);
	dns_answer_free(a);

	/* too short, and a compression pointer */
	len[0] = 2;
	a = answer_new(DNS_RR_MX, 1, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == -1);
	dns_answer_free(a);
	r[0][2] = 0xc0;
	r[0][3] = 0x0c;
	len[0] = 4;
	a = answer_new(DNS_RR_MX, 1, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == -1);
	dns_answer_free(a);

	/* no data */
	a = answer_new(DNS_RR_MX, 0, d, len);
	CHECK(dns_answer_mx(a, &mx, &null_mx) == 0 && !null_mx && mx == NULL);
	dns_answer_free(a);
}

static void test_tlsa(void)
{
	uint8_t good[35] = { 3, 1, 1 };
	static const uint8_t full[] = { 2, 0, 0, 0x30, 0x82 };
	static const uint8_t shortr[] = { 3, 1, 1 };
	const uint8_t *d[3] = { good, shortr, full };
	size_t len[3] = { sizeof(good), sizeof(shortr), sizeof(full) };
	struct dns_answer *a;
	struct dns_tlsa *t;
	size_t n;

	for (size_t i = 3; i < sizeof(good); i++)
		good[i] = (uint8_t)i;
	a = answer_new(DNS_RR_TLSA, 3, d, len);
	n = dns_answer_tlsa(a, &t);
	CHECK(n == 2);
	if (n == 2) {
		CHECK(t[0].usage == 3 && t[0].selector == 1 && t[0].mtype == 1);
		CHECK(t[0].len == 32 && memcmp(t[0].data, good + 3, 32) == 0);
		CHECK(t[1].usage == 2 && t[1].selector == 0 && t[1].mtype == 0);
		CHECK(t[1].len == 2 && t[1].data[0] == 0x30);
	}
	dns_tlsa_free(t, n);
	dns_answer_free(a);

	a = answer_new(DNS_RR_TLSA, 1, &d[1], &len[1]);
	CHECK(dns_answer_tlsa(a, &t) == 0 && t == NULL);
	dns_answer_free(a);
}

static void test_addrs(void)
{
	static const uint8_t v4[] = { 192, 0, 2, 1 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t bad[] = { 1, 2, 3 };
	const uint8_t *d4[2] = { v4, bad };
	size_t l4[2] = { 4, 3 };
	const uint8_t *d6[2] = { v6, v4 };
	size_t l6[2] = { 16, 4 };
	struct dns_answer *a;
	char **v;

	a = answer_new(DNS_RR_A, 2, d4, l4);
	CHECK(dns_answer_addrs(a, &v) == 1);
	CHECK_STREQ(v[0], "192.0.2.1");
	dns_strv_free(v, 1);
	dns_answer_free(a);

	a = answer_new(DNS_RR_AAAA, 2, d6, l6);
	CHECK(dns_answer_addrs(a, &v) == 1);
	CHECK_STREQ(v[0], "2001:db8::1");
	dns_strv_free(v, 1);
	dns_answer_free(a);

	/* the same record twice in one set: one address */
	d4[1] = v4;
	l4[1] = 4;
	a = answer_new(DNS_RR_A, 2, d4, l4);
	CHECK(dns_answer_addrs(a, &v) == 1);
	dns_strv_free(v, 1);
	dns_answer_free(a);

	a = answer_new(DNS_RR_MX, 1, d4, l4);
	CHECK(dns_answer_addrs(a, &v) == 0 && v == NULL);
	dns_answer_free(a);
}

/* A ub_result as libunbound would hand it over. */
static struct ub_result *ub_new(int rcode, int havedata, int secure, int bogus)
{
	struct ub_result *r = xcalloc(1, sizeof(*r));

	r->qname = xstrdup("example.test");
	r->qtype = DNS_RR_A;
	r->qclass = 1;
	r->rcode = rcode;
	r->havedata = havedata;
	r->nxdomain = rcode == 3;
	r->secure = secure;
	r->bogus = bogus;
	r->ttl = 300;
	r->data = xcalloc(3, sizeof(char *));
	r->len = xcalloc(3, sizeof(int));
	if (havedata) {
		r->data[0] = xmemdup("\xc0\x00\x02\x01", 4);
		r->data[1] = xmemdup("\xc0\x00\x02\x02", 4);
		r->len[0] = r->len[1] = 4;
	}
	if (bogus)
		r->why_bogus = xstrdup("signature expired");
	return r;
}

static void test_security_mapping(void)
{
	struct {
		int rcode, havedata, secure, bogus, err;
		enum dns_status st;
		enum dns_security sec;
		size_t nrr;
	} cases[] = {
		{ 0, 1, 1, 0, 0, DNS_OK, DNS_SECURE, 2 },
		{ 0, 1, 0, 0, 0, DNS_OK, DNS_INSECURE, 2 },
		{ 0, 0, 1, 0, 0, DNS_NODATA, DNS_SECURE, 0 },
		{ 3, 0, 1, 0, 0, DNS_NXDOMAIN, DNS_SECURE, 0 },
		{ 3, 0, 0, 0, 0, DNS_NXDOMAIN, DNS_INSECURE, 0 },
		{ 2, 0, 0, 0, 0, DNS_SERVFAIL, DNS_INSECURE, 0 },
		{ 5, 0, 0, 0, 0, DNS_SERVFAIL, DNS_INSECURE, 0 },
		{ 0, 1, 0, 1, 0, DNS_SERVFAIL, DNS_BOGUS, 0 },
		{ 0, 0, 0, 0, UB_SERVFAIL, DNS_SERVFAIL, DNS_INSECURE, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ub_result *r = cases[i].err ? NULL :
				      ub_new(cases[i].rcode, cases[i].havedata,
					     cases[i].secure, cases[i].bogus);
		struct dns_answer *a = dns_answer_from_ub("example.test", DNS_RR_A,
							  cases[i].err, r);

		if (a->status != cases[i].st || a->security != cases[i].sec)
			fprintf(stderr, "  case %zu: %s/%s\n", i, dns_status_name(a->status),
				dns_security_name(a->security));
		CHECK(a->status == cases[i].st);
		CHECK(a->security == cases[i].sec);
		CHECK(a->nrr == cases[i].nrr);
		CHECK_STREQ(a->qname, "example.test");
		if (cases[i].bogus)
			CHECK_STREQ(a->why_bogus, "signature expired");
		else
			CHECK(a->why_bogus == NULL);
		if (a->nrr == 2)
			CHECK(a->rrs[1].len == 4 && a->rrs[1].data[3] == 2 && a->ttl == 300);
		dns_answer_free(a);
		ub_resolve_free(r);
	}
	CHECK_STREQ(dns_security_name(DNS_SECURE), "secure");
	CHECK_STREQ(dns_security_name(DNS_INSECURE), "insecure");
	CHECK_STREQ(dns_security_name(DNS_BOGUS), "bogus");
	CHECK_STREQ(dns_status_name(DNS_NXDOMAIN), "nxdomain");
}

/* More records than the bound: only the first 64 are kept. */
static void test_rr_bound(void)
{
	struct ub_result *r = ub_new(0, 0, 0, 0);
	struct dns_answer *a;

	free(r->data);
	free(r->len);
	r->havedata = 1;
	r->data = xcalloc(101, sizeof(char *));
	r->len = xcalloc(101, sizeof(int));
	for (int i = 0; i < 100; i++) {
		r->data[i] = xmemdup("\x7f\x00\x00\x01", 4);
		r->len[i] = 4;
	}
	a = dns_answer_from_ub("example.test", DNS_RR_A, 0, r);
	CHECK(a->status == DNS_OK && a->nrr == 64);
	dns_answer_free(a);
	ub_resolve_free(r);
}

static void test_config_errors(void)
{
	struct event_base *base = event_base_new();
	char *err = NULL;
	struct dns *dns = dns_new(base, "/nonexistent/unbound.conf", &err);

	CHECK(dns == NULL);
	CHECK(err != NULL && strstr(err, "/nonexistent/unbound.conf") != NULL);
	free(err);
	dns_free(NULL);
	event_base_free(base);
}

/* ---- live lookups against knotd ---- */

#define TLSA_HEX "0000000000000000000000000000000000000000000000000000000000000001"

static char live_dir[] = "/tmp/pw-dns-XXXXXX";
static pid_t knot_pid;
static int live_port;

static void write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", live_dir, name);
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
	free(path);
}

static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void write_zone(const char *zone)
{
	char *name = xasprintf("%s.zone", zone);
	char *text = xasprintf("$ORIGIN %s.\n$TTL 300\n"
			       "@ SOA ns hostmaster 1 3600 600 86400 300\n"
			       "@ NS ns\nns A 127.0.0.1\n"
			       "@ MX 10 MX\n@ MX 20 mx2\n"
			       "mx A 127.0.0.2\nmx AAAA ::1\nmx2 A 127.0.0.3\n"
			       "_25._tcp.mx TLSA 3 1 1 " TLSA_HEX "\n", zone);

	write_file(name, text);
	free(name);
	free(text);
}

/* Start knotd with the three zones; wait until the signed zone answers; write the anchor. */
static bool live_start(void)
{
	char *conf, *cmd, *path;
	bool up = false;

	if (mkdtemp(live_dir) == NULL)
		return false;
	live_port = free_port();
	conf = xasprintf("server:\n    listen: 127.0.0.1@%d\n    rundir: %s\n"
			 "log:\n  - target: stderr\n    any: warning\n"
			 "database:\n    storage: %s\n"
			 "keystore:\n  - id: ks\n    backend: pem\n    config: %s/keys\n"
			 "policy:\n  - id: p\n    algorithm: ecdsap256sha256\n    keystore: ks\n"
			 "template:\n  - id: default\n    storage: %s\n"
			 "zone:\n  - domain: secure.test\n    dnssec-signing: on\n"
			 "    dnssec-policy: p\n  - domain: insecure.test\n"
			 "  - domain: bogus.test\n",
			 live_port, live_dir, live_dir, live_dir, live_dir);
	write_file("knot.conf", conf);
	free(conf);
	write_zone("secure.test");
	write_zone("insecure.test");
	write_zone("bogus.test");
	knot_pid = fork();
	if (knot_pid == 0) {
		char *log = xasprintf("%s/knot.log", live_dir);
		char *kconf = xasprintf("%s/knot.conf", live_dir);

		if (freopen(log, "w", stderr) == NULL || freopen(log, "w", stdout) == NULL)
			_exit(127);
		execlp("knotd", "knotd", "-c", kconf, (char *)NULL);
		_exit(127);
	}
	CHECK(knot_pid > 0);
	/* kdig with a short timeout: the first queries to a starting knotd can hang */
	cmd = xasprintf("kdig @127.0.0.1 -p %d +time=1 +retry=0 +noall +answer secure.test DNSKEY"
			" 2>/dev/null | grep -P '\\tDNSKEY\\t257 ' > %s/secure.key",
			live_port, live_dir);
	for (int i = 0; i < 50 && !up; i++) {
		up = system(cmd) == 0;
		if (!up)
			usleep(100000);
	}
	free(cmd);
	CHECK(up);
	conf = xasprintf("server:\n    do-not-query-localhost: no\n"
			 "    local-zone: \"test.\" nodefault\n"
			 "    username: \"\"\n    chroot: \"\"\n    directory: \"%s\"\n"
			 "    use-syslog: no\n    verbosity: 0\n"
			 "    trust-anchor-file: \"%s/secure.key\"\n"
			 "    trust-anchor: \"bogus.test. DS 12345 13 2 " TLSA_HEX "\"\n"
			 "stub-zone:\n    name: \"secure.test\"\n    stub-addr: 127.0.0.1@%d\n"
			 "stub-zone:\n    name: \"insecure.test\"\n    stub-addr: 127.0.0.1@%d\n"
			 "stub-zone:\n    name: \"bogus.test\"\n    stub-addr: 127.0.0.1@%d\n",
			 live_dir, live_dir, live_port, live_port, live_port);
	write_file("unbound.conf", conf);
	free(conf);
	path = xasprintf("%s/knot.log", live_dir);
	if (!up)
		fprintf(stderr, "knotd did not come up; its log is %s\n", path);
	free(path);
	return up;
}

static void live_stop(bool keep)
{
	char *cmd;

	if (knot_pid > 0) {
		kill(knot_pid, SIGTERM);
		waitpid(knot_pid, NULL, 0);
	}
	if (keep)
		return;
	cmd = xasprintf("rm -rf '%s'", live_dir);
	CHECK(system(cmd) == 0);
	free(cmd);
}

struct lookup {
	const char *name;
	int qtype;
	struct dns_answer *answer;
	int calls;
};

static int live_pending;
static struct event_base *live_base;

static void live_cb(struct dns_answer *answer, void *arg)
{
	struct lookup *l = arg;

	l->calls++;
	l->answer = answer;
	if (--live_pending == 0)
		event_base_loopbreak(live_base);
}

static void live_checks(struct lookup *l)
{
	struct dns_mx *mx;
	struct dns_tlsa *tlsa;
	char **addrs;
	bool null_mx;
	size_t n;

	/* secure.test MX: secure, two hosts in order, lowercase */
	CHECK(l[0].answer->status == DNS_OK && l[0].answer->security == DNS_SECURE);
	CHECK(dns_answer_mx(l[0].answer, &mx, &null_mx) == 2);
	CHECK_STREQ(mx[0].host, "mx.secure.test");
	CHECK_STREQ(mx[1].host, "mx2.secure.test");
	dns_mx_free(mx, 2);
	/* TLSA: secure, one 3 1 1 */
	CHECK(l[1].answer->security == DNS_SECURE);
	n = dns_answer_tlsa(l[1].answer, &tlsa);
	CHECK(n == 1 && tlsa[0].usage == 3 && tlsa[0].len == 32 && tlsa[0].data[31] == 1);
	dns_tlsa_free(tlsa, n);
	/* A and AAAA */
	CHECK(l[2].answer->security == DNS_SECURE);
	n = dns_answer_addrs(l[2].answer, &addrs);
	CHECK(n == 1 && strcmp(addrs[0], "127.0.0.2") == 0);
	dns_strv_free(addrs, n);
	n = dns_answer_addrs(l[3].answer, &addrs);
	CHECK(n == 1 && strcmp(addrs[0], "::1") == 0);
	dns_strv_free(addrs, n);
	/* NXDOMAIN and NODATA, both proven secure */
	CHECK(l[4].answer->status == DNS_NXDOMAIN && l[4].answer->security == DNS_SECURE);
	CHECK(l[5].answer->status == DNS_NODATA && l[5].answer->security == DNS_SECURE);
	/* insecure and bogus */
	CHECK(l[6].answer->status == DNS_OK && l[6].answer->security == DNS_INSECURE);
	CHECK(l[7].answer->status == DNS_SERVFAIL && l[7].answer->security == DNS_BOGUS);
	CHECK(l[7].answer->why_bogus != NULL && l[7].answer->nrr == 0);
}

static void test_live(void)
{
	struct lookup l[] = {
		{ "secure.test", DNS_RR_MX, NULL, 0 },
		{ "_25._tcp.mx.secure.test", DNS_RR_TLSA, NULL, 0 },
		{ "mx.secure.test", DNS_RR_A, NULL, 0 },
		{ "mx.secure.test", DNS_RR_AAAA, NULL, 0 },
		{ "nx.secure.test", DNS_RR_A, NULL, 0 },
		{ "secure.test", DNS_RR_TLSA, NULL, 0 },
		{ "insecure.test", DNS_RR_MX, NULL, 0 },
		{ "bogus.test", DNS_RR_MX, NULL, 0 },
	};
	size_t nl = sizeof(l) / sizeof(l[0]);
	struct lookup cancelled = { "mx2.secure.test", DNS_RR_A, NULL, 0 };
	struct lookup dropped = { "mx2.insecure.test", DNS_RR_A, NULL, 0 };
	struct timeval limit = { 30, 0 };
	struct dns_answer *a;
	char *conf, *err = NULL;
	struct dns *dns;
	int h;
	bool up = live_start();

	if (!up) {
		live_stop(true);
		return;
	}
	live_base = event_base_new();
	conf = xasprintf("%s/unbound.conf", live_dir);
	dns = dns_new(live_base, conf, &err);
	CHECK(dns != NULL && err == NULL);
	free(conf);
	if (dns == NULL) {
		free(err);
		live_stop(true);
		return;
	}
	/* a lookup cancelled at once never calls back, and nothing leaks (ASan) */
	h = dns_resolve(dns, cancelled.name, cancelled.qtype, live_cb, &cancelled);
	CHECK(h > 0);
	dns_cancel(dns, h);
	dns_cancel(dns, h);	/* twice is harmless */
	for (size_t i = 0; i < nl; i++) {
		CHECK(dns_resolve(dns, l[i].name, l[i].qtype, live_cb, &l[i]) > 0);
		live_pending++;
	}
	CHECK(dns_resolve(dns, "", DNS_RR_A, live_cb, &l[0]) == -1);
	event_base_loopexit(live_base, &limit);
	event_base_dispatch(live_base);
	CHECK(live_pending == 0);
	CHECK(cancelled.calls == 0);
	for (size_t i = 0; i < nl; i++)
		CHECK(l[i].calls == 1 && l[i].answer != NULL);
	if (live_pending == 0)
		live_checks(l);

	/* the blocking variant, for command-line tools */
	a = dns_resolve_sync(dns, "mx.secure.test", DNS_RR_A, &err);
	CHECK(a != NULL && a->status == DNS_OK && a->security == DNS_SECURE);
	dns_answer_free(a);

	/* freeing the resolver with a lookup in flight drops it without a callback */
	CHECK(dns_resolve(dns, dropped.name, dropped.qtype, live_cb, &dropped) > 0);
	dns_free(dns);
	CHECK(dropped.calls == 0);
	for (size_t i = 0; i < nl; i++)
		dns_answer_free(l[i].answer);
	event_base_free(live_base);
	live_stop(unit_failures != 0);
}

static void test_txt_join(void)
{
	char out[64];
	static const unsigned char two[] = "\x07v=STSv1\x0a; id=abc12";
	static const unsigned char nul[] = "\x03" "a\0b";
	static const unsigned char cut[] = "\x09short";

	CHECK(dns_txt_join(two, sizeof(two) - 1, out, sizeof(out)) == 17);
	CHECK_STREQ(out, "v=STSv1; id=abc12");
	CHECK(dns_txt_join(nul, 4, out, sizeof(out)) == -1);
	CHECK(dns_txt_join(cut, sizeof(cut) - 1, out, sizeof(out)) == -1);
	CHECK(dns_txt_join(two, sizeof(two) - 1, out, 17) == -1);	/* no room for the NUL */
	CHECK(dns_txt_join(two, 0, out, sizeof(out)) == 0 && out[0] == '\0');
}

TEST_MAIN(test_txt_join, test_name_from_wire, test_mx_sort_shuffle, test_mx_null_and_malformed, test_tlsa,
	  test_addrs, test_security_mapping, test_rr_bound, test_config_errors, test_live)
