/*
 * test_strutil.c - durations, sizes, booleans, addresses, CIDR matching, host:port, buffers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "netaddr.h"
#include "strutil.h"
#include "unit.h"

static void test_durations(void)
{
	int64_t d;
	char text[32];

	CHECK(parse_duration("30s", &d) && d == 30);
	CHECK(parse_duration("10m", &d) && d == 600);
	CHECK(parse_duration("2h", &d) && d == 7200);
	CHECK(parse_duration("5d", &d) && d == 432000);
	CHECK(parse_duration("45", &d) && d == 45);
	CHECK(!parse_duration("", &d));
	CHECK(!parse_duration("-1m", &d));
	CHECK(!parse_duration("1x", &d));
	CHECK(!parse_duration("1mm", &d));
	CHECK(!parse_duration("99999999999999999999", &d));
	format_duration(9000, text, sizeof(text));
	CHECK_STREQ(text, "2h30m");
	format_duration(0, text, sizeof(text));
	CHECK_STREQ(text, "0s");
}

static void test_sizes_and_bools(void)
{
	uint64_t v;
	bool b;

	CHECK(parse_size("10K", &v) && v == 10240);
	CHECK(parse_size("50M", &v) && v == 52428800);
	CHECK(!parse_size("M", &v));
	CHECK(parse_bool("On", &b) && b);
	CHECK(parse_bool("no", &b) && !b);
	CHECK(!parse_bool("perhaps", &b));
	CHECK(parse_uint("7", 1, 10, &v) && v == 7);
	CHECK(!parse_uint("0", 1, 10, &v));
}

static void test_addresses(void)
{
	char *c;

	CHECK(addr_valid("anna@example.org"));
	CHECK(addr_valid("j\xc3\xb6rg@example.org"));
	CHECK(!addr_valid("anna"));
	CHECK(!addr_valid("@example.org"));
	CHECK(!addr_valid("anna@"));
	CHECK(!addr_valid("an na@example.org"));
	CHECK(!addr_valid("anna@exa_mple.org"));
	CHECK(!addr_valid("anna@example.org."));
	c = addr_canonical("Anna@EXAMPLE.Org");
	CHECK_STREQ(c, "Anna@example.org");
	free(c);
	CHECK_STREQ(addr_domain("a@b.test"), "b.test");
}

static struct sockaddr_storage sa_of(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &s4->sin_addr);
	}
	return ss;
}

static void test_cidr(void)
{
	struct cidr *list;
	char *bad = NULL;
	int n = cidr_list_parse("127.0.0.0/8, ::1/128 192.168.10.0/23", &list, &bad);
	struct sockaddr_storage ss;

	CHECK(n == 3);
	ss = sa_of("127.1.2.3");
	CHECK(cidr_list_match(list, 3, (struct sockaddr *)&ss));
	ss = sa_of("::ffff:127.0.0.1");
	CHECK(cidr_list_match(list, 3, (struct sockaddr *)&ss));
	ss = sa_of("::1");
	CHECK(cidr_list_match(list, 3, (struct sockaddr *)&ss));
	ss = sa_of("192.168.11.255");
	CHECK(cidr_list_match(list, 3, (struct sockaddr *)&ss));
	ss = sa_of("192.168.12.0");
	CHECK(!cidr_list_match(list, 3, (struct sockaddr *)&ss));
	ss = sa_of("10.0.0.1");
	CHECK(!cidr_list_match(list, 3, (struct sockaddr *)&ss));
	free(list);
	CHECK(cidr_list_parse("10.0.0.0/8, nonsense", &list, &bad) == -1);
	CHECK_STREQ(bad, "nonsense");
	free(bad);
	ss = sa_of("10.1.1.1");
	CHECK(sockaddr_is_private((struct sockaddr *)&ss));
	ss = sa_of("fe80::1");
	CHECK(sockaddr_is_private((struct sockaddr *)&ss));
	ss = sa_of("8.8.8.8");
	CHECK(!sockaddr_is_private((struct sockaddr *)&ss));
}

static void test_hostport(void)
{
	char *host;
	uint16_t port;

	CHECK(hostport_parse("127.0.0.1:10025", &host, &port) && port == 10025);
	CHECK_STREQ(host, "127.0.0.1");
	free(host);
	CHECK(hostport_parse("[::1]:25", &host, &port) && port == 25);
	CHECK_STREQ(host, "::1");
	free(host);
	CHECK(!hostport_parse("::1:25", &host, &port));
	CHECK(!hostport_parse("host:0", &host, &port));
	CHECK(!hostport_parse("host:70000", &host, &port));
	CHECK(!hostport_parse(":25", &host, &port));
}

static void test_buf_maximum(void)
{
	struct buf b;
	char *p;
	size_t len;

	buf_init(&b, 8);
	CHECK(buf_adds(&b, "abcd") == 0);
	CHECK(buf_addf(&b, "%d", 1234) == 0);
	CHECK(buf_add(&b, "x", 1) == -1);	/* over the maximum: refused, unchanged */
	CHECK(b.len == 8);
	CHECK_STREQ(b.data, "abcd1234");
	buf_consume(&b, 4);
	CHECK_STREQ(b.data, "1234");
	p = buf_release(&b, &len);
	CHECK(len == 4 && strcmp(p, "1234") == 0);
	CHECK(b.data == NULL && b.len == 0);
	free(p);
	buf_free(&b);
}

static void test_hex_and_hostnames(void)
{
	const unsigned char b[] = { 0x00, 0x0f, 0xa5, 0xff };
	char out[9];

	hex_encode(b, sizeof(b), out);
	CHECK_STREQ(out, "000fa5ff");
	hex_encode(b, 0, out);
	CHECK_STREQ(out, "");
	CHECK(hostname_valid("mx-1.Example.org"));
	CHECK(!hostname_valid("a..b") && !hostname_valid("-a.b") && !hostname_valid("a-.b"));
	CHECK(!hostname_valid("a_b.example") && !hostname_valid(""));
}

static void test_list_has(void)
{
	CHECK(str_list_has("a.example, B.Example ,c", "b.example"));
	CHECK(str_list_has("a.example,\tc ", "c"));
	CHECK(!str_list_has("a.example,b.example", "example"));
	{
		char v[16];

		CHECK(str_list_value("a.test=127.0.0.2, MX.B.test = ::1 ", "mx.b.test", v,
				     sizeof(v)));
		CHECK_STREQ(v, "::1");
		CHECK(str_list_value("a.test=127.0.0.2,b.test=1", "a.test", v, sizeof(v)));
		CHECK_STREQ(v, "127.0.0.2");
		CHECK(!str_list_value("a.test=127.0.0.2", "test", v, sizeof(v)));
		CHECK(!str_list_value("a.test", "a.test", v, sizeof(v)));	/* no value */
		CHECK(!str_list_value("a.test=0123456789abcdef", "a.test", v, sizeof(v)));
		CHECK(!str_list_value(NULL, "a.test", v, sizeof(v)));
	}
	CHECK(!str_list_has("a.example", ""));
	CHECK(!str_list_has("", "a") && !str_list_has(NULL, "a"));
}

TEST_MAIN(test_durations, test_sizes_and_bools, test_addresses, test_cidr, test_hostport,
	  test_buf_maximum, test_hex_and_hostnames, test_list_has)
