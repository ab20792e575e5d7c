/*
 * test_policy.c - every delivery decision of relay_policy.c as tables: MX, address and TLSA
 * answers, STARTTLS, handshake outcomes, exhaustion of the MX list under the guarantee and
 * without it, retries, and a scenario table that chains the decisions the way the SMTP client
 * does for a domain with one MX host.
 */
#include <string.h>

#include "relay/relay_policy.h"
#include "unit.h"

enum { G = 1, NG = 0 };

static void test_mx_lookup(void)
{
	static const struct {
		bool g;
		enum dns_status st;
		enum dns_security sec;
		bool null_mx;
		int nmx;
		enum policy_action want;
		bool implicit;
		enum policy_reason reason;
	} t[] = {
		{ NG, DNS_OK, DNS_SECURE, false, 2, POLICY_PROCEED, false, REASON_NONE },
		{ G, DNS_OK, DNS_INSECURE, false, 1, POLICY_PROCEED, false, REASON_NONE },
		{ NG, DNS_NODATA, DNS_SECURE, false, 0, POLICY_PROCEED, true, REASON_NONE },
		{ G, DNS_NODATA, DNS_INSECURE, false, 0, POLICY_PROCEED, true, REASON_NONE },
		{ NG, DNS_OK, DNS_SECURE, true, 0, POLICY_BOUNCE, false, REASON_NULL_MX },
		{ G, DNS_OK, DNS_INSECURE, true, 0, POLICY_BOUNCE, false, REASON_NULL_MX },
		{ NG, DNS_NXDOMAIN, DNS_SECURE, false, 0, POLICY_BOUNCE, false, REASON_NXDOMAIN },
		{ NG, DNS_SERVFAIL, DNS_INSECURE, false, 0, POLICY_DEFER, false, REASON_DNS_TEMP },
		{ G, DNS_SERVFAIL, DNS_INSECURE, false, 0, POLICY_DEFER, false, REASON_DNS_TEMP },
		/* BOGUS: defer without the guarantee, stop with it; never bounce on a forgery */
		{ NG, DNS_SERVFAIL, DNS_BOGUS, false, 0, POLICY_DEFER, false, REASON_DNSSEC_BOGUS },
		{ G, DNS_SERVFAIL, DNS_BOGUS, false, 0, POLICY_HOLD, false, REASON_DNSSEC_BOGUS },
		{ NG, DNS_NXDOMAIN, DNS_BOGUS, false, 0, POLICY_DEFER, false, REASON_DNSSEC_BOGUS },
		{ G, DNS_OK, DNS_BOGUS, true, 0, POLICY_HOLD, false, REASON_DNSSEC_BOGUS },
		/* MX records that did not parse */
		{ NG, DNS_OK, DNS_SECURE, false, -1, POLICY_DEFER, false, REASON_DNS_TEMP },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool implicit = !t[i].implicit;
		enum policy_reason reason = REASON_INJECTION;
		enum policy_action a = policy_mx_lookup(t[i].g, t[i].st, t[i].sec, t[i].null_mx,
							t[i].nmx, &implicit, &reason);

		if (a != t[i].want || implicit != t[i].implicit || reason != t[i].reason)
			fprintf(stderr, "mx row %zu: got %s/%d/%s\n", i, policy_action_name(a),
				implicit, policy_reason_name(reason));
		CHECK(a == t[i].want);
		CHECK(implicit == t[i].implicit);
		CHECK(reason == t[i].reason);
	}
}

static void test_dane_applies(void)
{
	CHECK(policy_dane_applies(DNS_SECURE, DNS_SECURE));
	CHECK(!policy_dane_applies(DNS_SECURE, DNS_INSECURE));
	CHECK(!policy_dane_applies(DNS_INSECURE, DNS_SECURE));
	CHECK(!policy_dane_applies(DNS_BOGUS, DNS_SECURE));
	CHECK(!policy_dane_applies(DNS_SECURE, DNS_BOGUS));
}

static void test_addr_lookup(void)
{
	enum policy_reason r;

	CHECK(policy_addr_lookup(DNS_SECURE, 2, &r) == POLICY_PROCEED && r == REASON_NONE);
	CHECK(policy_addr_lookup(DNS_INSECURE, 1, &r) == POLICY_PROCEED);
	CHECK(policy_addr_lookup(DNS_BOGUS, 1, &r) == POLICY_NEXT_MX && r == REASON_DNSSEC_BOGUS);
	CHECK(policy_addr_lookup(DNS_BOGUS, 0, &r) == POLICY_NEXT_MX && r == REASON_DNSSEC_BOGUS);
	CHECK(policy_addr_lookup(DNS_INSECURE, 0, &r) == POLICY_NEXT_MX && r == REASON_DNS_TEMP);
}

static void test_tlsa(void)
{
	static const struct {
		enum dns_status st;
		enum dns_security sec;
		int n;
		bool usable;
		enum policy_dane want;
	} t[] = {
		{ DNS_OK, DNS_SECURE, 1, true, DANE_AUTH },
		{ DNS_OK, DNS_SECURE, 2, false, DANE_TLS_ONLY },
		{ DNS_OK, DNS_INSECURE, 1, true, DANE_NONE },
		{ DNS_NXDOMAIN, DNS_SECURE, 0, false, DANE_NONE },
		{ DNS_NODATA, DNS_SECURE, 0, false, DANE_NONE },
		{ DNS_NXDOMAIN, DNS_INSECURE, 0, false, DANE_NONE },
		{ DNS_SERVFAIL, DNS_BOGUS, 0, false, DANE_SKIP },
		{ DNS_OK, DNS_BOGUS, 1, true, DANE_SKIP },
		{ DNS_SERVFAIL, DNS_INSECURE, 0, false, DANE_SKIP },
		{ DNS_OK, DNS_SECURE, 0, false, DANE_NONE },	/* records all malformed */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CHECK(policy_tlsa(t[i].st, t[i].sec, t[i].n, t[i].usable) == t[i].want);
}

static void test_starttls(void)
{
	static const struct {
		bool g;
		enum policy_dane dane;
		enum policy_action missing;
		enum policy_action refused;
		enum policy_action hs_fail;
	} t[] = {
		{ NG, DANE_NONE, POLICY_PLAINTEXT, POLICY_PLAINTEXT, POLICY_RECONNECT_PLAIN },
		{ NG, DANE_AUTH, POLICY_NEXT_MX, POLICY_NEXT_MX, POLICY_NEXT_MX },
		{ NG, DANE_TLS_ONLY, POLICY_NEXT_MX, POLICY_NEXT_MX, POLICY_NEXT_MX },
		{ G, DANE_NONE, POLICY_NEXT_MX, POLICY_NEXT_MX, POLICY_NEXT_MX },
		{ G, DANE_AUTH, POLICY_NEXT_MX, POLICY_NEXT_MX, POLICY_NEXT_MX },
		{ G, DANE_TLS_ONLY, POLICY_NEXT_MX, POLICY_NEXT_MX, POLICY_NEXT_MX },
	};
	static const int codes[] = { 454, 500, 502, 554 };
	static const enum tls_failure fails[] = { TLS_FAIL_PROTOCOL, TLS_FAIL_CIPHER, TLS_FAIL_HANDSHAKE };

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(policy_starttls_missing(t[i].g, t[i].dane) == t[i].missing);
		CHECK(policy_starttls_reply(t[i].g, t[i].dane, 220) == POLICY_PROCEED);
		for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++)
			CHECK(policy_starttls_reply(t[i].g, t[i].dane, codes[c]) == t[i].refused);
		for (size_t f = 0; f < sizeof(fails) / sizeof(fails[0]); f++)
			CHECK(policy_handshake_failed(t[i].g, t[i].dane, fails[f]) == t[i].hs_fail);
		/* a DANE mismatch is never followed by plaintext */
		CHECK(policy_handshake_failed(t[i].g, t[i].dane, TLS_FAIL_DANE) == POLICY_NEXT_MX);
	}
	CHECK(policy_tls_reason(TLS_FAIL_PROTOCOL) == REASON_TLS_PROTOCOL);
	CHECK(policy_tls_reason(TLS_FAIL_CIPHER) == REASON_TLS_CIPHER);
	CHECK(policy_tls_reason(TLS_FAIL_DANE) == REASON_DANE_MISMATCH);
	CHECK(policy_tls_reason(TLS_FAIL_HANDSHAKE) == REASON_TLS_HANDSHAKE);
}

static void test_exhausted(void)
{
	const int64_t now = 1000000, day = 86400;

	/* without the guarantee everything is retried */
	CHECK(policy_exhausted(NG, false, REASON_NO_STARTTLS, 0, 0, now) == POLICY_DEFER);
	CHECK(policy_exhausted(NG, false, REASON_DANE_MISMATCH, 0, 0, now) == POLICY_DEFER);
	CHECK(policy_exhausted(NG, true, REASON_NONE, 0, 0, now) == POLICY_DEFER);
	/* with it, a security failure stops at once by default */
	CHECK(policy_exhausted(G, false, REASON_NO_STARTTLS, 0, 0, now) == POLICY_HOLD);
	CHECK(policy_exhausted(G, false, REASON_DNSSEC_BOGUS, 0, 0, now) == POLICY_HOLD);
	CHECK(policy_exhausted(G, false, REASON_INJECTION, 0, 0, now) == POLICY_HOLD);
	/* an outage on some host is not a verdict */
	CHECK(policy_exhausted(G, true, REASON_NO_STARTTLS, 0, 0, now) == POLICY_DEFER);
	CHECK(policy_exhausted(G, true, REASON_NONE, 0, 0, now) == POLICY_DEFER);
	CHECK(policy_exhausted(G, false, REASON_CONNECT, 0, 0, now) == POLICY_DEFER);
	/* retry_for: retried within the window from the first TLS failure, then held */
	CHECK(policy_exhausted(G, false, REASON_TLS_PROTOCOL, 0, day, now) == POLICY_DEFER);
	CHECK(policy_exhausted(G, false, REASON_TLS_PROTOCOL, now - 100, day, now) == POLICY_DEFER);
	CHECK(policy_exhausted(G, false, REASON_TLS_PROTOCOL, now - day, day, now) == POLICY_HOLD);
	CHECK(policy_exhausted(G, false, REASON_TLS_PROTOCOL, now - 2 * day, day, now) == POLICY_HOLD);
}

static void test_reply_retry(void)
{
	CHECK(policy_reply(250) == POLICY_PROCEED);
	CHECK(policy_reply(354) == POLICY_PROCEED);
	CHECK(policy_reply(421) == POLICY_DEFER);
	CHECK(policy_reply(452) == POLICY_DEFER);
	CHECK(policy_reply(550) == POLICY_BOUNCE);
	CHECK(policy_reply(554) == POLICY_BOUNCE);

	CHECK(policy_retry_delay(1, 300, 3600) == 300);
	CHECK(policy_retry_delay(2, 300, 3600) == 600);
	CHECK(policy_retry_delay(3, 300, 3600) == 1200);
	CHECK(policy_retry_delay(4, 300, 3600) == 2400);
	CHECK(policy_retry_delay(5, 300, 3600) == 3600);
	CHECK(policy_retry_delay(60, 300, 3600) == 3600);
	CHECK(policy_expired(0, 100, 100));
	CHECK(!policy_expired(0, 100, 99));

	CHECK_STREQ(policy_status(REASON_NO_STARTTLS, true), "5.7.10");
	CHECK_STREQ(policy_status(REASON_DNSSEC_BOGUS, true), "5.7.10");
	CHECK_STREQ(policy_status(REASON_NULL_MX, true), "5.1.10");
	CHECK_STREQ(policy_status(REASON_EXPIRED, true), "4.4.7");
	CHECK_STREQ(policy_status(REASON_CONNECT, false), "4.4.1");
	CHECK(policy_reason_is_security(REASON_INJECTION));
	CHECK(policy_reason_is_security(REASON_STARTTLS_REFUSED));
	CHECK(!policy_reason_is_security(REASON_CONNECT));
	CHECK(!policy_reason_is_security(REASON_SMTP_PERM));
}

/* ---- scenarios: one MX host, decisions chained as relay_mta.c chains them ----------- */

enum tlsa_kind { T_NONE, T_USABLE, T_UNUSABLE, T_BOGUS, T_INSECURE };
enum result { R_TLS, R_PLAIN, R_DEFER, R_HOLD, R_BOUNCE };

struct scenario {
	bool g;
	enum dns_status mx_st;
	enum dns_security mx_sec;
	bool null_mx;
	enum dns_security addr_sec;
	enum tlsa_kind tlsa;
	bool offered;
	int starttls_code;
	bool injected;
	enum tls_failure hs;
	int final_code;		/* reply to the final dot; 0: connection refused */
	enum result want;
};

static enum result scenario_exhausted(bool g, bool temp, enum policy_reason sec)
{
	return policy_exhausted(g, temp, sec, 0, 0, 1000) == POLICY_HOLD ? R_HOLD : R_DEFER;
}

static enum result scenario_final(int code, bool tls)
{
	enum policy_action a = policy_reply(code);

	if (a == POLICY_PROCEED)
		return tls ? R_TLS : R_PLAIN;
	return a == POLICY_BOUNCE ? R_BOUNCE : R_DEFER;
}

static enum result scenario_run(const struct scenario *s)
{
	bool implicit;
	enum policy_reason reason;
	enum policy_action a;
	enum policy_dane dane = DANE_NONE;

	a = policy_mx_lookup(s->g, s->mx_st, s->mx_sec, s->null_mx, 1, &implicit, &reason);
	if (a == POLICY_BOUNCE)
		return R_BOUNCE;
	if (a == POLICY_HOLD)
		return R_HOLD;
	if (a == POLICY_DEFER)
		return R_DEFER;
	if (policy_addr_lookup(s->addr_sec, 1, &reason) != POLICY_PROCEED)
		return scenario_exhausted(s->g, false, reason);
	if (policy_dane_applies(s->mx_sec, s->addr_sec)) {
		static const struct { enum dns_status st; enum dns_security sec; int n; bool u; } k[] = {
			[T_NONE] = { DNS_NXDOMAIN, DNS_SECURE, 0, false },
			[T_USABLE] = { DNS_OK, DNS_SECURE, 1, true },
			[T_UNUSABLE] = { DNS_OK, DNS_SECURE, 1, false },
			[T_BOGUS] = { DNS_SERVFAIL, DNS_BOGUS, 0, false },
			[T_INSECURE] = { DNS_OK, DNS_INSECURE, 1, true },
		};

		dane = policy_tlsa(k[s->tlsa].st, k[s->tlsa].sec, k[s->tlsa].n, k[s->tlsa].u);
		if (dane == DANE_SKIP)
			return scenario_exhausted(s->g, false, REASON_DNSSEC_BOGUS);
	}
	if (s->final_code == 0)
		return scenario_exhausted(s->g, true, REASON_NONE);
	if (!s->offered) {
		a = policy_starttls_missing(s->g, dane);
		return a == POLICY_PLAINTEXT ? scenario_final(s->final_code, false) :
		       scenario_exhausted(s->g, false, REASON_NO_STARTTLS);
	}
	if (s->starttls_code == 220 && s->injected)
		return scenario_exhausted(s->g, false, REASON_INJECTION);
	a = policy_starttls_reply(s->g, dane, s->starttls_code);
	if (a == POLICY_PLAINTEXT)
		return scenario_final(s->final_code, false);
	if (a == POLICY_NEXT_MX)
		return scenario_exhausted(s->g, false, REASON_STARTTLS_REFUSED);
	if (s->hs != TLS_FAIL_NONE) {
		a = policy_handshake_failed(s->g, dane, s->hs);
		if (a == POLICY_RECONNECT_PLAIN)
			return scenario_final(s->final_code, false);
		return scenario_exhausted(s->g, false, policy_tls_reason(s->hs));
	}
	return scenario_final(s->final_code, true);
}

#define S DNS_SECURE
#define I DNS_INSECURE
#define B DNS_BOGUS
#define OK DNS_OK

static void test_scenarios(void)
{
	static const struct scenario t[] = {
		/* g   mx_st  mx_sec null addr tlsa     offer code inj  handshake          final want */
		/* plain opportunistic TLS, both kinds of sender */
		{ NG, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_TLS },
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_TLS },
		/* no STARTTLS */
		{ NG, OK, I, false, I, T_NONE, false, 0, false, TLS_FAIL_NONE, 250, R_PLAIN },
		{ G, OK, I, false, I, T_NONE, false, 0, false, TLS_FAIL_NONE, 250, R_HOLD },
		{ G, OK, S, false, S, T_NONE, false, 0, false, TLS_FAIL_NONE, 250, R_HOLD },
		/* STARTTLS refused */
		{ NG, OK, I, false, I, T_NONE, true, 454, false, TLS_FAIL_NONE, 250, R_PLAIN },
		{ G, OK, I, false, I, T_NONE, true, 454, false, TLS_FAIL_NONE, 250, R_HOLD },
		{ G, OK, I, false, I, T_NONE, true, 554, false, TLS_FAIL_NONE, 250, R_HOLD },
		/* old protocol, weak ciphers, broken handshake */
		{ NG, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_PROTOCOL, 250, R_PLAIN },
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_PROTOCOL, 250, R_HOLD },
		{ NG, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_CIPHER, 250, R_PLAIN },
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_CIPHER, 250, R_HOLD },
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_HANDSHAKE, 250, R_HOLD },
		/* injection after STARTTLS: never delivered on that connection */
		{ NG, OK, I, false, I, T_NONE, true, 220, true, TLS_FAIL_NONE, 250, R_DEFER },
		{ G, OK, I, false, I, T_NONE, true, 220, true, TLS_FAIL_NONE, 250, R_HOLD },
		/* DANE: usable TLSA, match */
		{ NG, OK, S, false, S, T_USABLE, true, 220, false, TLS_FAIL_NONE, 250, R_TLS },
		{ G, OK, S, false, S, T_USABLE, true, 220, false, TLS_FAIL_NONE, 250, R_TLS },
		/* DANE mismatch: never plaintext; the guarantee stops */
		{ NG, OK, S, false, S, T_USABLE, true, 220, false, TLS_FAIL_DANE, 250, R_DEFER },
		{ G, OK, S, false, S, T_USABLE, true, 220, false, TLS_FAIL_DANE, 250, R_HOLD },
		/* DANE: STARTTLS missing or refused or handshake failing: no plaintext */
		{ NG, OK, S, false, S, T_USABLE, false, 0, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ NG, OK, S, false, S, T_USABLE, true, 454, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ NG, OK, S, false, S, T_USABLE, true, 220, false, TLS_FAIL_PROTOCOL, 250, R_DEFER },
		{ NG, OK, S, false, S, T_UNUSABLE, false, 0, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ NG, OK, S, false, S, T_UNUSABLE, true, 220, false, TLS_FAIL_NONE, 250, R_TLS },
		/* TLSA BOGUS: skip the host */
		{ NG, OK, S, false, S, T_BOGUS, true, 220, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ G, OK, S, false, S, T_BOGUS, true, 220, false, TLS_FAIL_NONE, 250, R_HOLD },
		/* TLSA not secure, or MX/address insecure: no DANE, opportunistic */
		{ NG, OK, S, false, S, T_INSECURE, false, 0, false, TLS_FAIL_NONE, 250, R_PLAIN },
		{ NG, OK, I, false, I, T_USABLE, false, 0, false, TLS_FAIL_NONE, 250, R_PLAIN },
		{ NG, OK, S, false, I, T_USABLE, false, 0, false, TLS_FAIL_NONE, 250, R_PLAIN },
		/* BOGUS MX or address answers */
		{ NG, DNS_SERVFAIL, B, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ G, DNS_SERVFAIL, B, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_HOLD },
		{ NG, OK, S, false, B, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_DEFER },
		{ G, OK, S, false, B, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_HOLD },
		/* SERVFAIL: retried by everyone */
		{ G, DNS_SERVFAIL, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_DEFER },
		/* null MX and no such domain */
		{ NG, OK, S, true, S, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_BOUNCE },
		{ G, OK, I, true, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_BOUNCE },
		{ G, DNS_NXDOMAIN, S, false, S, T_NONE, true, 220, false, TLS_FAIL_NONE, 250, R_BOUNCE },
		/* connection refused before TLS: retried as usual, even under the guarantee */
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 0, R_DEFER },
		{ NG, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 0, R_DEFER },
		/* the receiver's own answer */
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 550, R_BOUNCE },
		{ G, OK, I, false, I, T_NONE, true, 220, false, TLS_FAIL_NONE, 451, R_DEFER },
		{ NG, OK, I, false, I, T_NONE, false, 0, false, TLS_FAIL_NONE, 550, R_BOUNCE },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum result got = scenario_run(&t[i]);

		if (got != t[i].want)
			fprintf(stderr, "scenario row %zu: got %d, want %d\n", i, got, t[i].want);
		CHECK(got == t[i].want);
	}
}

TEST_MAIN(test_mx_lookup, test_dane_applies, test_addr_lookup, test_tlsa, test_starttls,
	  test_exhausted, test_reply_retry, test_scenarios)
