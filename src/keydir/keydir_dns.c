/*
 * keydir_dns.c - RFC 2136 dynamic updates and zone transfers for the key directory, both
 * TSIG-signed (RFC 8945), over TCP with our own time limits; see keydir.h.
 *
 * ldns builds, signs and parses the messages; the transport is ours so that every step
 * (connect, send, each reply) has a deadline and nothing is printed to stderr. Records are
 * removed per type ("delete an RRset", class ANY), never with type ANY: servers that limit
 * which types a key may update (Knot's update-type) refuse a delete of the whole name.
 * These calls block; they run from the command line or a worker thread of serve.
 *
 * Tested against Knot, BIND 9 and PowerDNS. They agree on updates and transfers (every
 * message of a transfer signed) but refuse differently; keydir_dns_refusal turns each way
 * into one sentence. Replies are outside input: ldns gets a message only once its records
 * fit and its TSIG is last, since ldns leaks on some malformed ones.
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

/* Skip the domain name at *pos (labels or a compression pointer); false when malformed. */
static bool dns_wire_skip_name(const uint8_t *w, size_t len, size_t *pos)
{
	for (int labels = 0; labels < 128 && *pos < len; labels++) {
		uint8_t c = w[*pos];

		if (c == 0) {
			*pos += 1;
			return true;
		}
		if ((c & 0xC0) == 0xC0) {
			*pos += 2;
			return *pos <= len;
		}
		if (c & 0xC0)
			return false;
		*pos += 1 + (size_t)c;
	}
	return false;
}

/*
 * Whether a message's records fit its length and a TSIG record, if any, is the last one, as
 * RFC 8945 4.2 requires. ldns keeps only the last TSIG of a message and loses the others,
 * and loses a TSIG it has read when a later record is broken (a leak per message either
 * way); a message that passes here gives it neither chance.
 */
static bool dns_wire_tsig_last(const uint8_t *w, size_t len)
{
	size_t pos = 12, rrs;

	if (len < 12)
		return false;
	for (unsigned q = (unsigned)w[4] << 8 | w[5]; q > 0; q--) {
		if (!dns_wire_skip_name(w, len, &pos) || (pos += 4) > len)
			return false;
	}
	rrs = ((size_t)w[6] << 8 | w[7]) + ((size_t)w[8] << 8 | w[9]) +
	      ((size_t)w[10] << 8 | w[11]);
	for (; rrs > 0; rrs--) {
		if (!dns_wire_skip_name(w, len, &pos) || pos + 10 > len)
			return false;
		if (w[pos] == 0 && w[pos + 1] == LDNS_RR_TYPE_TSIG && rrs > 1)
			return false;
		pos += 10 + ((size_t)w[pos + 8] << 8 | w[pos + 9]);
		if (pos > len)
			return false;
	}
	return true;
}

/* ldns_wire2pkt for messages from a server, after the checks ldns lacks. */
static ldns_pkt *dns_wire2pkt(const uint8_t *wire, size_t len)
{
	ldns_pkt *pkt = NULL;

	if (len > 65535 || !dns_wire_tsig_last(wire, len) ||
	    ldns_wire2pkt(&pkt, wire, len) != LDNS_STATUS_OK)
		return NULL;
	return pkt;
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

/*
 * Check pkt's TSIG with our key over mac: the query's MAC, or for the later messages of a
 * transfer the previous message's (timers only, RFC 8945 5.3.1). ldns takes the TSIG record
 * out of pkt while it works and does not put it back when it cannot compute the MAC (an
 * algorithm it does not know): put it back here, or it would be lost with the packet.
 */
static bool dns_tsig_verify(const struct keydir_conf *kc, ldns_pkt *pkt, const uint8_t *wire,
			    size_t len, const ldns_rdf *mac, bool next)
{
	ldns_rr *tsig = ldns_pkt_tsig(pkt);
	bool ok;

	ok = next ? ldns_pkt_tsig_verify_next(pkt, wire, len, kc->tsig_name, kc->tsig_secret, mac, 1)
		  : ldns_pkt_tsig_verify(pkt, wire, len, kc->tsig_name, kc->tsig_secret, mac);
	if (ldns_pkt_tsig(pkt) == NULL)
		ldns_pkt_set_tsig(pkt, tsig);
	return ok;
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

/* The TSIG error of a reply (RFC 8945 4.2), 0 when there is none. */
static unsigned dns_tsig_error(const ldns_pkt *reply)
{
	const ldns_rr *tsig = ldns_pkt_tsig(reply);

	if (tsig == NULL || ldns_rr_rd_count(tsig) <= 5 || ldns_rr_rdf(tsig, 5) == NULL ||
	    ldns_rdf_size(ldns_rr_rdf(tsig, 5)) != 2)
		return 0;
	return ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
}

/* What a TSIG error says about our key. */
static char *dns_tsig_error_text(const struct keydir_conf *kc, unsigned terr)
{
	if (terr == 18)
		return xstrdup("the clocks of this host and the server differ by more than the "
			       "TSIG fudge of 300 seconds");
	if (terr == 17)
		return xasprintf("the server does not accept TSIG key %s: it does not know the "
				 "key, or does not let it make this change", kc->tsig_name);
	return xasprintf("the server does not accept TSIG key %s as configured (name, "
			 "algorithm and secret must match the server's)", kc->tsig_name);
}

/* What a refusal that carries no TSIG error means, by rcode, once the key is not in doubt. */
static char *dns_rcode_hint(const struct keydir_conf *kc, ldns_pkt_rcode rc, const char *zone)
{
	switch (rc) {
	case LDNS_RCODE_REFUSED:
		return dns_tsig_on(kc)
		       ? xasprintf("the server accepted key %s, but its policy does not let the "
				   "key make this change in zone %s", kc->tsig_name, zone)
		       : xstrdup("the server does not allow this without a TSIG key");
	case LDNS_RCODE_NOTAUTH:
		return xasprintf("the server is not authoritative for zone %s", zone);
	case LDNS_RCODE_NOTZONE:
		return xasprintf("a name is not inside zone %s", zone);
	case LDNS_RCODE_SERVFAIL:
		return xstrdup("the server failed; see its log");
	default:
		return NULL;
	}
}

/*
 * Whether the reply is signed with our key over mac (the query's MAC): 1 signed and
 * valid, 0 unsigned, -1 a signature that does not verify.
 */
static int dns_reply_signed(const struct keydir_conf *kc, ldns_pkt *reply, const uint8_t *wire,
			    size_t len, const uint8_t *mac, size_t mac_len)
{
	ldns_rdf *m;
	bool ok;

	if (ldns_pkt_tsig(reply) == NULL)
		return 0;
	m = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, mac_len, mac);
	if (m == NULL)
		return -1;
	ok = dns_tsig_verify(kc, reply, wire, len, m, false);
	ldns_rdf_deep_free(m);
	return ok ? 1 : -1;
}

/*
 * Servers say "no" in different ways. Knot and BIND answer a key they do not accept with
 * NOTAUTH and a TSIG error (RFC 8945 5.2); PowerDNS answers an update with a plain REFUSED
 * and a transfer with a plain NOTAUTH, both unsigned. A refusal signed with our key means
 * the key was accepted and the server's own rules said no (BIND's update-policy: REFUSED).
 * So the words depend on the TSIG error first, then on whether the answer is signed.
 */
char *keydir_dns_refusal(const struct keydir_conf *kc, const char *zone, const uint8_t *wire,
			 size_t len, const uint8_t *mac, size_t mac_len)
{
	ldns_pkt *reply;
	ldns_pkt_rcode rc;
	char *name, *why = NULL, *out;
	unsigned terr;
	int sig = 1;	/* not looked at counts as signed: the key is not in doubt */

	reply = dns_wire2pkt(wire, len);
	if (reply == NULL)
		return xstrdup("the server's reply is not a DNS message");
	rc = ldns_pkt_get_rcode(reply);
	name = ldns_pkt_rcode2str(rc);
	if (name == NULL)
		name = xasprintf("rcode %d", (int)rc);
	terr = dns_tsig_error(reply);
	if (dns_tsig_on(kc) && mac != NULL && terr == 0)
		sig = dns_reply_signed(kc, reply, wire, len, mac, mac_len);
	if (terr) {
		why = dns_tsig_error_text(kc, terr);
		out = xasprintf("%s (TSIG %s %u): %s", name, dns_tsig_error_name(terr), terr, why);
	} else if (sig < 0) {
		out = xasprintf("%s, with a TSIG signature that does not verify with key %s", name,
				kc->tsig_name);
	} else if (sig == 0 && (rc == LDNS_RCODE_REFUSED || rc == LDNS_RCODE_NOTAUTH)) {
		out = xasprintf("%s, unsigned: the server does not accept TSIG key %s as configured "
				"(name, algorithm and secret must match the server's), or does not "
				"serve zone %s", name, kc->tsig_name, zone);
	} else {
		why = dns_rcode_hint(kc, rc, zone);
		out = why ? xasprintf("%s: %s", name, why) : xstrdup(name);
	}
	free(why);
	free(name);
	ldns_pkt_free(reply);
	return out;
}

/*
 * Parse a reply and check it belongs to the query: same id, signed with our key when the
 * query was (first: against the query's MAC; later AXFR messages: the previous MAC).
 */
static ldns_pkt *dns_parse_reply(const struct keydir_conf *kc, const uint8_t *wire, size_t len,
				 uint16_t id, const ldns_rdf *mac, bool next, char **err)
{
	ldns_pkt *reply = dns_wire2pkt(wire, len);

	if (reply == NULL) {
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
	if (ldns_pkt_tsig(reply) == NULL || !dns_tsig_verify(kc, reply, wire, len, mac, next)) {
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
		const ldns_rdf *m = dns_mac(pkt);
		char *t = keydir_dns_refusal(kc, zone, wire, len, m ? ldns_rdf_data(m) : NULL,
					     m ? ldns_rdf_size(m) : 0);

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

/* Remember the MAC of msg: the next message of the transfer is signed over it. */
static void dns_axfr_keep_mac(struct keydir_axfr *x, const ldns_pkt *msg)
{
	const ldns_rdf *m = dns_mac(msg);

	free(x->mac);
	x->mac = m ? xmemdup(ldns_rdf_data(m), ldns_rdf_size(m)) : NULL;
	x->mac_len = m ? ldns_rdf_size(m) : 0;
}

int keydir_dns_axfr_msg(const struct keydir_conf *kc, const char *zone, struct keydir_axfr *x,
			const uint8_t *wire, size_t len, keydir_dns_rr_cb cb, void *arg, char **err)
{
	ldns_rdf *mac = x->mac ? ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, x->mac_len, x->mac)
			       : NULL;
	ldns_pkt *msg = dns_parse_reply(kc, wire, len, x->id, mac, x->next, err);
	int rc = -1;

	if (msg != NULL && ldns_pkt_get_rcode(msg) != LDNS_RCODE_NOERROR) {
		/* Only the first message is signed over the query's MAC alone. */
		char *t = keydir_dns_refusal(kc, zone, wire, len, x->next ? NULL : x->mac,
					     x->next ? 0 : x->mac_len);

		*err = xasprintf("dns_server %s refused the transfer of zone %s: %s",
				 kc->dns_server.host, zone, t);
		free(t);
	} else if (msg != NULL) {
		dns_axfr_records(msg, cb, arg, &x->soas);
		dns_axfr_keep_mac(x, msg);
		x->next = true;
		if (x->soas >= 2)
			rc = 1;
		else if (ldns_rr_list_rr_count(ldns_pkt_answer(msg)) == 0)
			*err = xasprintf("empty message in the transfer of %s", zone);
		else
			rc = 0;
	}
	ldns_pkt_free(msg);
	ldns_rdf_deep_free(mac);
	return rc;
}

int keydir_dns_axfr(const struct keydir_conf *kc, const char *zone, keydir_dns_rr_cb cb, void *arg,
		    char **err)
{
	int64_t deadline = monotonic_ms() + DNS_AXFR_TIMEOUT_MS;
	ldns_rdf *zone_rdf = dns_dname(zone);
	struct keydir_axfr x = { 0 };
	ldns_pkt *q;
	int fd, rc = 0;

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
	x.id = ldns_pkt_id(q);
	dns_axfr_keep_mac(&x, q);
	while (rc == 0) {
		size_t len;
		int64_t step = monotonic_ms() + KEYDIR_DNS_TIMEOUT_MS;
		uint8_t *wire = dns_read_msg(fd, &len, step < deadline ? step : deadline);

		if (wire == NULL) {
			*err = xasprintf("zone transfer of %s from %s broke off", zone,
					 kc->dns_server.host);
			rc = -1;
			break;
		}
		rc = keydir_dns_axfr_msg(kc, zone, &x, wire, len, cb, arg, err);
		free(wire);
	}
	close(fd);
	free(x.mac);
	ldns_pkt_free(q);
	return rc < 0 ? -1 : 0;
}
