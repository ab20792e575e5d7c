/*
 * netaddr.h - IPv4/IPv6 addresses, CIDR networks and "host:port" strings.
 */
#ifndef PW_NETADDR_H
#define PW_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* Parse "192.0.2.0/24", "2001:db8::/32" or a bare address (full-length prefix). */
bool cidr_parse(const char *s, struct cidr *out);
/* Parse a comma- or space-separated list; returns the count, -1 on the first bad entry
 * (with *bad pointing at a copy of it, caller frees). */
int cidr_list_parse(const char *s, struct cidr **out, char **bad);
/* Does sa (IPv4, IPv6 or IPv4-mapped IPv6) fall into any of the networks? */
bool cidr_list_match(const struct cidr *list, size_t n, const struct sockaddr *sa);

/* Parse "127.0.0.1:10025", "[::1]:25", "localhost:25" into host (caller frees) and port. */
bool hostport_parse(const char *s, char **host, uint16_t *port);
/* Text form of a socket address ("192.0.2.1" / "2001:db8::1"), without port. */
void sockaddr_ntop(const struct sockaddr *sa, char *buf, size_t len);

/*
 * True for addresses a server must never fetch from on a user's behalf: loopback,
 * private (RFC 1918, ULA), link-local, unspecified, multicast, CGNAT, documentation ranges.
 */
bool sockaddr_is_private(const struct sockaddr *sa);

#endif
