/*
 * netaddr.c - address, CIDR and host:port parsing; see netaddr.h.
 */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

bool cidr_parse(const char *s, struct cidr *out)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned maxprefix;

	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		maxprefix = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		maxprefix = 128;
	} else {
		return false;
	}
	out->prefix = maxprefix;
	if (slash) {
		char *end;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || p > maxprefix)
			return false;
		out->prefix = (unsigned)p;
	}
	return true;
}

int cidr_list_parse(const char *s, struct cidr **out, char **bad)
{
	char *copy = xstrdup(s), *save = NULL;
	int n = 0;

	*out = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		*out = xreallocarray(*out, (size_t)n + 1, sizeof(**out));
		if (!cidr_parse(tok, &(*out)[n])) {
			*bad = xstrdup(tok);
			free(copy);
			free(*out);
			*out = NULL;
			return -1;
		}
		n++;
	}
	free(copy);
	return n;
}

/* Does addr (family-sized bytes) fall into network c? */
static bool cidr_contains(const struct cidr *c, const uint8_t *addr)
{
	unsigned full = c->prefix / 8, rest = c->prefix % 8;

	if (memcmp(c->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (c->addr[full] & mask) == (addr[full] & mask);
}

/* Extract family and address bytes, unwrapping IPv4-mapped IPv6. */
static bool sockaddr_bytes(const struct sockaddr *sa, int *family, uint8_t out[16])
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		*family = AF_INET;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			memcpy(out, a + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(out, a, 16);
			*family = AF_INET6;
		}
		return true;
	}
	return false;
}

bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family;

	if (!sockaddr_bytes(sa, &family, addr))
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i].family == family && cidr_contains(&list[i], addr))
			return true;
	return false;
}

bool hostport_parse(const char *s, char **host, uint16_t *port)
{
	const char *colon, *hstart = s, *hend;
	char *end;
	unsigned long p;

	if (*s == '[') {
		hend = strchr(s, ']');
		if (hend == NULL || hend[1] != ':')
			return false;
		hstart = s + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return false;
		hend = colon;
	}
	if (hend == hstart)
		return false;
	p = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || p == 0 || p > 65535)
		return false;
	*host = xstrndup(hstart, (size_t)(hend - hstart));
	*port = (uint16_t)p;
	return true;
}

void sockaddr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = sa->sa_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

bool sockaddr_is_private(const struct sockaddr *sa)
{
	static const char *const nets[] = {
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32",
		"64:ff9b::/96", "100::/64",
	};
	struct cidr c;

	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		if (!cidr_parse(nets[i], &c))
			continue;
		if (cidr_list_match(&c, 1, sa))
			return true;
	}
	return false;
}
