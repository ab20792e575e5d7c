/*
 * keydir_dns.c - RFC 2136 dynamic updates and zone transfers for the key directory, both
 * TSIG-signed (RFC 8945), over TCP with our own time limits; see keydir.h.
 *
 * ldns builds, signs and parses the messages; the transport is ours so that every step
 * (connect, send, each reply) has a deadline and nothing is printed to stderr. Records are
 * removed per type ("delete an RRset", class ANY), never with type ANY: servers that limit
 * which types a key may update (Knot's update-type) refuse a delete of the whole name.
 * These calls block; they run from the command line or a worker thread of serve.
 */
#include "keydir.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define DNS_TSIG_FUDGE 300
#define DNS_AXFR_TIMEOUT_MS (10 * 60 * 1000)

/* Wait for events on fd until deadline; false on timeout or error. */
static bool dns_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int rc;

	for (;;) {
		left = deadline - monotonic_ms();
		if (left <= 0)
			return false;
		rc = poll(&p, 1, (int)left);
		if (rc > 0)
			return true;
		if (rc < 0 && errno != EINTR)
			return false;
	}
}

/* Connect to dns_server (any of its addresses) within the deadline; -1 + *err. */
static int dns_connect(const struct conf_hostport *hp, int64_t deadline, char **err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	char port[8];
	int fd = -1, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	snprintf(port, sizeof(port), "%u", hp->port ? hp->port : 53);
	rc = getaddrinfo(hp->host, port, &hints, &res);
	if (rc != 0) {
		*err = xasprintf("cannot resolve dns_server %s: %s", hp->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && dns_wait(fd, POLLOUT, deadline) &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0))
			break;
		if (soerr == 0)
			soerr = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		*err = xasprintf("cannot connect to dns_server %s port %s: %s", hp->host, port,
				 soerr ? strerror(soerr) : "timed out");
	return fd;
}

static bool dns_write_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			return false;
		} else if (!dns_wait(fd, POLLOUT, deadline)) {
			return false;
		}
	}
	return true;
}

static bool dns_read_full(int fd, uint8_t *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);

		if (r > 0) {
			p += r;
			n -= (size_t)r;
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			return false;
		} else if (!dns_wait(fd, POLLIN, deadline)) {
			return false;
		}
	}
	return true;
}

/* Send one message with its two-byte length (RFC 1035 4.2.2). */
static bool dns_send_msg(int fd, const uint8_t *wire, size_t len, int64_t deadline)
{
	uint8_t hdr[2] = { (uint8_t)(len >> 8), (uint8_t)len };

	return len <= 65535 && dns_write_all(fd, hdr, 2, deadline) &&
	       dns_write_all(fd, wire, len, deadline);
}

/* Read one message; at most 65535 bytes by the framing itself. */
static uint8_t *dns_read_msg(int fd, size_t *len, int64_t deadline)
{
	uint8_t hdr[2];
	uint8_t *buf;

	if (!dns_read_full(fd, hdr, 2, deadline))
		return NULL;
	*len = (size_t)hdr[0] << 8 | hdr[1];
	if (*len < 12)
		return NULL;
	buf = xmalloc(*len);
	if (!dns_read_full(fd, buf, *len, deadline)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static bool dns_tsig_on(const struct keydir_conf *kc)
{
	return kc->tsig_name && *kc->tsig_name && kc->tsig_secret && *kc->tsig_secret;
}

/* Sign pkt with the configured key; -1 + *err (e.g. a secret that is not base64). */
static int dns_sign(const struct keydir_conf *kc, ldns_pkt *pkt, const ldns_rdf *prior_mac,
		    char **err)
{
	ldns_status s;

	if (!dns_tsig_on(kc))
		return 0;
	s = ldns_pkt_tsig_sign(pkt, kc->tsig_name, kc->tsig_secret, DNS_TSIG_FUDGE,
			       kc->tsig_algorithm, prior_mac);
	if (s != LDNS_STATUS_OK) {
		*err = xasprintf("cannot TSIG-sign with key %s: %s", kc->tsig_name,
				 ldns_get_errorstr_by_id(s));
		return -1;
	}
	return 0;
}

static const char *dns_tsig_error_name(unsigned e)
{
	switch (e) {
	case 16:
		return "BADSIG";
	case 17:
		return "BADKEY";
	case 18:
		return "BADTIME";
	case 22:
		return "BADTRUNC";
	default:
		return "error";
	}
}

/* "NOTAUTH (TSIG BADKEY)": the reply's rcode and the TSIG error when there is one. */
static char *dns_rcode_text(const ldns_pkt *reply)
{
	char *rc = ldns_pkt_rcode2str(ldns_pkt_get_rcode(reply));
	const ldns_rr *tsig = ldns_pkt_tsig(reply);
	unsigned terr = 0;
	char *out;

	if (tsig && ldns_rr_rd_count(tsig) > 5)
		terr = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
	if (terr)
		out = xasprintf("%s (TSIG %s %u)", rc ? rc : "?", dns_tsig_error_name(terr), terr);
	else
		out = xstrdup(rc ? rc : "?");
	free(rc);
	return out;
}

/*
 * Parse a reply and check it belongs to the query: same id, signed with our key when the
 * query was (first: against the query's MAC; later AXFR messages: the previous MAC).
 */
static ldns_pkt *dns_parse_reply(const struct keydir_conf *kc, const uint8_t *wire, size_t len,
				 uint16_t id, const ldns_rdf *mac, bool next, char **err)
{
	ldns_pkt *reply = NULL;

	if (ldns_wire2pkt(&reply, wire, len) != LDNS_STATUS_OK) {
		*err = xstrdup("the server's reply is not a DNS message");
		return NULL;
	}
	if (ldns_pkt_id(reply) != id) {
		*err = xstrdup("the server's reply has another message ID");
		ldns_pkt_free(reply);
		return NULL;
	}
	if (!dns_tsig_on(kc) || ldns_pkt_get_rcode(reply) != LDNS_RCODE_NOERROR)
		return reply;	/* a refusal is reported by its rcode, signed or not */
	if (ldns_pkt_tsig(reply) == NULL ||
	    !(next ? ldns_pkt_tsig_verify_next(reply, wire, len, kc->tsig_name, kc->tsig_secret, mac, 1)
		   : ldns_pkt_tsig_verify(reply, wire, len, kc->tsig_name, kc->tsig_secret, mac))) {
		*err = xasprintf("the server's reply does not carry a valid TSIG signature of key %s",
				 kc->tsig_name);
		ldns_pkt_free(reply);
		return NULL;
	}
	return reply;
}

size_t keydir_dns_rrset_size(const struct keydir_rrset *set)
{
	/* owner (uncompressed) + type, class, TTL, RDLENGTH; once for the delete. */
	size_t per = strlen(set->owner) + 2 + 10, size = per;

	for (size_t i = 0; i < set->n; i++)
		size += per + set->rd[i].len;
	return size;
}

static ldns_rdf *dns_dname(const char *name)
{
	char *abs = xasprintf("%s.", name);
	ldns_rdf *r = ldns_dname_new_frm_str(abs);

	free(abs);
	return r;
}

/* The update section: per RRset a delete (class ANY, no RDATA), then each record. */
static ldns_rr_list *dns_update_section(const struct keydir_rrset *sets, size_t n, uint32_t ttl,
					char **err)
{
	ldns_rr_list *up = ldns_rr_list_new();

	for (size_t i = 0; i < n; i++) {
		ldns_rdf *owner = dns_dname(sets[i].owner);
		ldns_rr *rr;

		if (owner == NULL) {
			*err = xasprintf("not a domain name: %s", sets[i].owner);
			ldns_rr_list_deep_free(up);
			return NULL;
		}
		rr = ldns_rr_new();
		ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
		ldns_rr_set_type(rr, sets[i].type);
		ldns_rr_set_class(rr, LDNS_RR_CLASS_ANY);
		ldns_rr_set_ttl(rr, 0);
		ldns_rr_list_push_rr(up, rr);
		for (size_t j = 0; j < sets[i].n; j++) {
			rr = ldns_rr_new();
			ldns_rr_set_owner(rr, ldns_rdf_clone(owner));
			ldns_rr_set_type(rr, sets[i].type);
			ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
			ldns_rr_set_ttl(rr, ttl);
			ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_UNKNOWN,
								   sets[i].rd[j].len,
								   sets[i].rd[j].data));
			ldns_rr_list_push_rr(up, rr);
		}
		ldns_rdf_deep_free(owner);
	}
	return up;
}

/* Send a signed query on a new connection; returns the fd and the query's MAC. */
static int dns_send_query(const struct keydir_conf *kc, ldns_pkt *pkt, int64_t deadline,
			  char **err)
{
	uint8_t *wire = NULL;
	size_t len = 0;
	int fd;

	if (dns_sign(kc, pkt, NULL, err) < 0)
		return -1;
	if (ldns_pkt2wire(&wire, pkt, &len) != LDNS_STATUS_OK) {
		*err = xstrdup("cannot build the DNS message");
		return -1;
	}
	if (len > 65535) {
		*err = xasprintf("DNS message of %zu bytes is too large", len);
		free(wire);
		return -1;
	}
	fd = dns_connect(&kc->dns_server, deadline, err);
	if (fd >= 0 && !dns_send_msg(fd, wire, len, deadline)) {
		*err = xasprintf("cannot send to dns_server %s: %s", kc->dns_server.host,
				 errno ? strerror(errno) : "timed out");
		close(fd);
		fd = -1;
	}
	free(wire);
	return fd;
}

static const ldns_rdf *dns_mac(const ldns_pkt *pkt)
{
	const ldns_rr *tsig = ldns_pkt_tsig(pkt);

	return tsig && ldns_rr_rd_count(tsig) > 3 ? ldns_rr_rdf(tsig, 3) : NULL;
}

int keydir_dns_update(const struct keydir_conf *kc, const char *zone, const struct keydir_rrset *sets,
		      size_t n, char **err)
{
	int64_t deadline = monotonic_ms() + KEYDIR_DNS_TIMEOUT_MS;
	ldns_rr_list *up = dns_update_section(sets, n, (uint32_t)kc->ttl, err);
	ldns_rdf *zone_rdf;
	ldns_pkt *pkt, *reply = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;
	int fd, rc = -1;

	if (up == NULL)
		return -1;
	zone_rdf = dns_dname(zone);
	if (zone_rdf == NULL) {
		*err = xasprintf("not a zone name: %s", zone);
		ldns_rr_list_deep_free(up);
		return -1;
	}
	/* ldns_update_pkt_new takes zone_rdf and copies the update section. */
	pkt = ldns_update_pkt_new(zone_rdf, LDNS_RR_CLASS_IN, NULL, up, NULL);
	ldns_rr_list_deep_free(up);
	ldns_pkt_set_rd(pkt, false);
	ldns_pkt_set_random_id(pkt);
	fd = dns_send_query(kc, pkt, deadline, err);
	if (fd < 0)
		goto out;
	wire = dns_read_msg(fd, &len, deadline);
	close(fd);
	if (wire == NULL) {
		*err = xasprintf("no reply from dns_server %s to the update of %s", kc->dns_server.host,
				 zone);
		goto out;
	}
	reply = dns_parse_reply(kc, wire, len, ldns_pkt_id(pkt), dns_mac(pkt), false, err);
	if (reply == NULL)
		goto out;
	if (ldns_pkt_get_rcode(reply) != LDNS_RCODE_NOERROR) {
		char *t = dns_rcode_text(reply);
		*err = xasprintf("dns_server %s refused the update of zone %s: %s", kc->dns_server.host,
				 zone, t);
		free(t);
		goto out;
	}
	rc = 0;
out:
	ldns_pkt_free(reply);
	ldns_pkt_free(pkt);
	free(wire);
	return rc;
}

/* Hand every record of an AXFR message to cb; counts SOAs (the transfer ends at the 2nd). */
static void dns_axfr_records(const ldns_pkt *msg, keydir_dns_rr_cb cb, void *arg, int *soas)
{
	const ldns_rr_list *an = ldns_pkt_answer(msg);

	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(an, i);
		uint16_t type = (uint16_t)ldns_rr_get_type(rr);
		char *owner;
		uint8_t *rd = NULL;
		size_t len = 0, olen;

		if (type == LDNS_RR_TYPE_SOA) {
			(*soas)++;
			continue;
		}
		owner = ldns_rdf2str(ldns_rr_owner(rr));
		if (owner == NULL)
			continue;
		olen = strlen(owner);
		if (olen > 1 && owner[olen - 1] == '.')
			owner[olen - 1] = '\0';
		str_lower(owner);
		for (size_t j = 0; j < ldns_rr_rd_count(rr); j++) {
			const ldns_rdf *f = ldns_rr_rdf(rr, j);
			rd = xrealloc(rd, len + ldns_rdf_size(f) + 1);
			memcpy(rd + len, ldns_rdf_data(f), ldns_rdf_size(f));
			len += ldns_rdf_size(f);
		}
		cb(arg, owner, type, rd ? rd : (const uint8_t *)"", len);
		free(rd);
		free(owner);
	}
}

int keydir_dns_axfr(const struct keydir_conf *kc, const char *zone, keydir_dns_rr_cb cb, void *arg,
		    char **err)
{
	int64_t deadline = monotonic_ms() + DNS_AXFR_TIMEOUT_MS;
	ldns_rdf *zone_rdf = dns_dname(zone);
	ldns_pkt *q, *msg, *prev = NULL;
	int fd, soas = 0, rc = -1;

	if (zone_rdf == NULL) {
		*err = xasprintf("not a zone name: %s", zone);
		return -1;
	}
	q = ldns_pkt_query_new(zone_rdf, LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN, 0);
	ldns_pkt_set_random_id(q);
	fd = dns_send_query(kc, q, deadline, err);
	if (fd < 0) {
		ldns_pkt_free(q);
		return -1;
	}
	while (soas < 2) {
		size_t len;
		int64_t step = monotonic_ms() + KEYDIR_DNS_TIMEOUT_MS;
		uint8_t *wire = dns_read_msg(fd, &len, step < deadline ? step : deadline);

		if (wire == NULL) {
			*err = xasprintf("zone transfer of %s from %s broke off", zone,
					 kc->dns_server.host);
			break;
		}
		msg = dns_parse_reply(kc, wire, len, ldns_pkt_id(q), prev ? dns_mac(prev) : dns_mac(q),
				      prev != NULL, err);
		free(wire);
		if (msg == NULL)
			break;
		if (ldns_pkt_get_rcode(msg) != LDNS_RCODE_NOERROR) {
			char *t = dns_rcode_text(msg);
			*err = xasprintf("dns_server %s refused the transfer of zone %s: %s",
					 kc->dns_server.host, zone, t);
			free(t);
			ldns_pkt_free(msg);
			break;
		}
		dns_axfr_records(msg, cb, arg, &soas);
		ldns_pkt_free(prev);
		prev = msg;
		if (soas >= 2)
			rc = 0;
		else if (ldns_rr_list_rr_count(ldns_pkt_answer(msg)) == 0) {
			*err = xasprintf("empty message in the transfer of %s", zone);
			break;
		}
	}
	close(fd);
	ldns_pkt_free(prev);
	ldns_pkt_free(q);
	return rc;
}
