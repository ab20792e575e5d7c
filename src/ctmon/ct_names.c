/*
 * ct_names.c - a bounded DER reader for the fields of an X.509 certificate a CT monitor
 * needs (RFC 5280 4.1), and the certificate/precertificate finding identity.
 *
 * The reader never recurses over the input: it descends exactly the fixed path of the
 * structures it knows (Certificate > TBSCertificate > Name > RDN > attribute, extensions >
 * extension > GeneralNames), so the depth is bounded by the code. Each element's length
 * must fit inside its parent; tags are single-byte (no X.509 field it reads needs more);
 * lengths use at most 4 bytes and never the indefinite form, which DER forbids.
 */
#include "ctmon/ct_names.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/evp.h>

#include "log.h"

#define TAG_INTEGER     0x02
#define TAG_BITSTRING   0x03
#define TAG_OCTETSTRING 0x04
#define TAG_OID         0x06
#define TAG_BOOLEAN     0x01
#define TAG_UTCTIME     0x17
#define TAG_GENTIME     0x18
#define TAG_SEQUENCE    0x30
#define TAG_SET         0x31
#define TAG_VERSION     0xa0	/* [0] EXPLICIT */
#define TAG_EXTENSIONS  0xa3	/* [3] EXPLICIT */
#define TAG_GN_DNS      0x82	/* GeneralName dNSName [2] IMPLICIT IA5String */
#define TAG_GN_IP       0x87	/* GeneralName iPAddress [7] IMPLICIT OCTET STRING */

/* OID content octets of the few object identifiers looked for. */
static const uint8_t oid_cn[] = { 0x55, 0x04, 0x03 };			/* 2.5.4.3 */
static const uint8_t oid_san[] = { 0x55, 0x1d, 0x11 };			/* 2.5.29.17 */
static const uint8_t oid_poison[] = { 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79,
				      0x02, 0x04, 0x03 };		/* 1.3.6.1.4.1.11129.2.4.3 */
static const uint8_t oid_sct_list[] = { 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79,
					0x02, 0x04, 0x02 };	/* 1.3.6.1.4.1.11129.2.4.2 */

/* The unread part of a constructed element's content. */
struct der {
	const uint8_t *p;
	size_t n;
};

/* One element: its tag, where it starts (header included) and its content. */
struct der_elem {
	unsigned tag;
	const uint8_t *start;
	size_t total;
	const uint8_t *c;
	size_t len;
};

static bool der_read(struct der *d, struct der_elem *e)
{
	size_t hdr = 2, len;

	if (d->n < 2 || (d->p[0] & 0x1f) == 0x1f)
		return false;
	e->tag = d->p[0];
	len = d->p[1];
	if (len & 0x80) {
		size_t k = len & 0x7f;

		/* k == 0 is the indefinite form; more than 4 bytes is beyond any bound here. */
		if (k == 0 || k > 4 || d->n < 2 + k)
			return false;
		len = 0;
		for (size_t i = 0; i < k; i++)
			len = (len << 8) | d->p[2 + i];
		hdr += k;
	}
	if (len > d->n - hdr)
		return false;
	e->start = d->p;
	e->total = hdr + len;
	e->c = d->p + hdr;
	e->len = len;
	d->p += e->total;
	d->n -= e->total;
	return true;
}

static bool der_expect(struct der *d, unsigned tag, struct der_elem *e)
{
	return der_read(d, e) && e->tag == tag;
}

/* The content of e as a cursor, for descending into it. */
static struct der der_inner(const struct der_elem *e)
{
	struct der d = { e->c, e->len };

	return d;
}

static bool oid_is(const struct der_elem *e, const uint8_t *oid, size_t len)
{
	return e->tag == TAG_OID && e->len == len && memcmp(e->c, oid, len) == 0;
}

/* Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const uint8_t *p, size_t n, unsigned *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		*v = *v * 10 + (unsigned)(p[i] - '0');
	}
	return true;
}

static unsigned month_days(unsigned y, unsigned m)
{
	static const unsigned days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5). */
static bool der_time(const struct der_elem *e, time_t *t)
{
	const uint8_t *p = e->c;
	unsigned y, mo, d, h, mi, s;
	size_t yl;

	if (e->tag == TAG_UTCTIME && e->len == 13)
		yl = 2;
	else if (e->tag == TAG_GENTIME && e->len == 15)
		yl = 4;
	else
		return false;
	if (p[e->len - 1] != 'Z' || !digits(p, yl, &y) || !digits(p + yl, 2, &mo) ||
	    !digits(p + yl + 2, 2, &d) || !digits(p + yl + 4, 2, &h) ||
	    !digits(p + yl + 6, 2, &mi) || !digits(p + yl + 8, 2, &s))
		return false;
	if (yl == 2)
		y += y >= 50 ? 1900 : 2000;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || s > 59)
		return false;
	*t = (time_t)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s);
	return true;
}

static int add_name(struct ct_cert *c, enum ct_name_kind kind, const struct der_elem *e,
		    const char **err)
{
	struct ct_name *nm;

	if (c->n_names == CT_NAMES_MAX) {
		*err = "the certificate has more than 1000 names";
		return -1;
	}
	nm = &c->names[c->n_names++];
	nm->kind = kind;
	nm->tag = e->tag;
	nm->p = e->c;
	nm->len = e->len;
	return 0;
}

/* One AttributeTypeAndValue of the subject: keep it when it is a commonName. */
static int read_attribute(struct ct_cert *c, const struct der_elem *atv, const char **err)
{
	struct der d = der_inner(atv);
	struct der_elem type, value;

	if (atv->tag != TAG_SEQUENCE || !der_expect(&d, TAG_OID, &type) ||
	    !der_read(&d, &value) || d.n != 0) {
		*err = "a subject attribute is malformed";
		return -1;
	}
	if (oid_is(&type, oid_cn, sizeof(oid_cn)))
		return add_name(c, CT_NAME_CN, &value, err);
	return 0;
}

/* The subject Name: a SEQUENCE of RDN SETs of attributes. */
static int read_subject(struct ct_cert *c, const struct der_elem *name, const char **err)
{
	struct der rdns = der_inner(name);
	struct der_elem rdn, atv;

	while (rdns.n > 0) {
		struct der attrs;

		if (!der_expect(&rdns, TAG_SET, &rdn)) {
			*err = "the subject is malformed";
			return -1;
		}
		attrs = der_inner(&rdn);
		while (attrs.n > 0) {
			if (!der_read(&attrs, &atv) || read_attribute(c, &atv, err) < 0) {
				*err = *err ? *err : "the subject is malformed";
				return -1;
			}
		}
	}
	return 0;
}

/* The subjectAltName value: GeneralNames. Other name forms are skipped. */
static int read_san(struct ct_cert *c, const struct der_elem *value, const char **err)
{
	struct der os = der_inner(value), gns;
	struct der_elem seq, gn;

	if (!der_expect(&os, TAG_SEQUENCE, &seq) || os.n != 0) {
		*err = "the subjectAltName extension is malformed";
		return -1;
	}
	gns = der_inner(&seq);
	while (gns.n > 0) {
		if (!der_read(&gns, &gn)) {
			*err = "a subjectAltName entry is malformed";
			return -1;
		}
		if (gn.tag == TAG_GN_DNS && add_name(c, CT_NAME_DNS, &gn, err) < 0)
			return -1;
		if (gn.tag == TAG_GN_IP) {
			if (gn.len != 4 && gn.len != 16) {
				*err = "a subjectAltName iPAddress is neither 4 nor 16 bytes";
				return -1;
			}
			if (add_name(c, CT_NAME_IP, &gn, err) < 0)
				return -1;
		}
	}
	return 0;
}

/* One Extension: SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }. */
static bool split_extension(const struct der_elem *ext, struct der_elem *oid,
			    struct der_elem *value)
{
	struct der d = der_inner(ext);

	if (ext->tag != TAG_SEQUENCE || !der_expect(&d, TAG_OID, oid) || !der_read(&d, value))
		return false;
	if (value->tag == TAG_BOOLEAN && !der_read(&d, value))
		return false;
	return value->tag == TAG_OCTETSTRING && d.n == 0;
}

/* The [3] extensions: find the SAN and the CT extensions. */
static int read_extensions(struct ct_cert *c, const struct der_elem *a3, const char **err)
{
	struct der outer = der_inner(a3), exts;
	struct der_elem seq, ext, oid, value;

	if (!der_expect(&outer, TAG_SEQUENCE, &seq) || outer.n != 0) {
		*err = "the extensions are malformed";
		return -1;
	}
	exts = der_inner(&seq);
	while (exts.n > 0) {
		if (!der_read(&exts, &ext) || !split_extension(&ext, &oid, &value)) {
			*err = "an extension is malformed";
			return -1;
		}
		if (oid_is(&oid, oid_san, sizeof(oid_san)) && read_san(c, &value, err) < 0)
			return -1;
		if (oid_is(&oid, oid_poison, sizeof(oid_poison)))
			c->poison = true;
		if (oid_is(&oid, oid_sct_list, sizeof(oid_sct_list)))
			c->sct_list = true;
	}
	return 0;
}

/*
 * Find the TBSCertificate in der: either der is one (its first element is the [0] version
 * or the serial INTEGER) or a Certificate whose first element it is.
 */
static int find_tbs(const uint8_t *der, size_t n, struct der_elem *tbs, const char **err)
{
	struct der d = { der, n }, inner;
	struct der_elem outer, first;

	if (!der_expect(&d, TAG_SEQUENCE, &outer) || d.n != 0) {
		*err = "the certificate is not one DER SEQUENCE";
		return -1;
	}
	inner = der_inner(&outer);
	if (!der_read(&inner, &first)) {
		*err = "the certificate is empty or malformed";
		return -1;
	}
	if (first.tag == TAG_SEQUENCE) {
		*tbs = first;
		return 0;
	}
	if (first.tag == TAG_VERSION || first.tag == TAG_INTEGER) {
		*tbs = outer;
		return 0;
	}
	*err = "the DER is neither a Certificate nor a TBSCertificate";
	return -1;
}

static int read_validity(struct ct_cert *c, const struct der_elem *v, const char **err)
{
	struct der d = der_inner(v);
	struct der_elem nb, na;

	if (v->tag != TAG_SEQUENCE || !der_read(&d, &nb) || !der_read(&d, &na) || d.n != 0 ||
	    !der_time(&nb, &c->not_before) || !der_time(&na, &c->not_after)) {
		*err = "the validity is malformed";
		return -1;
	}
	return 0;
}

/* The fixed fields of the TBSCertificate, in their order (RFC 5280 4.1). */
static int read_tbs_fields(struct ct_cert *c, struct der *d, const char **err)
{
	struct der_elem e, sigalg, issuer, validity, subject, spki;

	if (!der_read(d, &e)) {
		*err = "the TBSCertificate is empty";
		return -1;
	}
	if (e.tag == TAG_VERSION && !der_read(d, &e)) {
		*err = "the TBSCertificate ends after its version";
		return -1;
	}
	if (e.tag != TAG_INTEGER || e.len == 0 || !der_expect(d, TAG_SEQUENCE, &sigalg) ||
	    !der_expect(d, TAG_SEQUENCE, &issuer) || !der_read(d, &validity) ||
	    !der_expect(d, TAG_SEQUENCE, &subject) || !der_expect(d, TAG_SEQUENCE, &spki)) {
		*err = "the TBSCertificate's fields are malformed";
		return -1;
	}
	c->serial = e.c;
	c->serial_len = e.len;
	c->issuer = issuer.start;
	c->issuer_len = issuer.total;
	c->spki = spki.start;
	c->spki_len = spki.total;
	if (read_validity(c, &validity, err) < 0)
		return -1;
	return read_subject(c, &subject, err);
}

int ct_cert_read(const uint8_t *der, size_t n, struct ct_cert *c, const char **err)
{
	struct der_elem tbs, e;
	struct der d;

	*err = NULL;
	c->n_names = 0;
	c->poison = c->sct_list = false;
	if (find_tbs(der, n, &tbs, err) < 0)
		return -1;
	c->tbs = tbs.start;
	c->tbs_len = tbs.total;
	d = der_inner(&tbs);
	if (read_tbs_fields(c, &d, err) < 0)
		return -1;
	/* Optional issuerUniqueID [1] and subjectUniqueID [2], then extensions [3]. */
	while (d.n > 0) {
		if (!der_read(&d, &e)) {
			*err = "the TBSCertificate's optional fields are malformed";
			return -1;
		}
		if (e.tag == TAG_EXTENSIONS && read_extensions(c, &e, err) < 0)
			return -1;
	}
	return 0;
}

int ct_name_ip_text(const struct ct_name *nm, char *buf, size_t size)
{
	if (nm->kind != CT_NAME_IP || (nm->len != 4 && nm->len != 16))
		return -1;
	return inet_ntop(nm->len == 4 ? AF_INET : AF_INET6, nm->p, buf, (socklen_t)size) ?
	       0 : -1;
}

/* ---- identity ---- */

/* Write a DER header of tag and len into h (room for 10 bytes); returns its length. */
static size_t der_header(uint8_t *h, unsigned tag, size_t len)
{
	size_t k = 0;

	h[0] = (uint8_t)tag;
	if (len < 0x80) {
		h[1] = (uint8_t)len;
		return 2;
	}
	for (size_t l = len; l > 0; l >>= 8)
		k++;
	h[1] = (uint8_t)(0x80 | k);
	for (size_t i = 0; i < k; i++)
		h[2 + i] = (uint8_t)(len >> (8 * (k - 1 - i)));
	return 2 + k;
}

static bool ext_dropped(const struct der_elem *ext)
{
	struct der_elem oid, value;

	/* The caller checked the extension with split_extension already. */
	if (!split_extension(ext, &oid, &value))
		return false;
	return oid_is(&oid, oid_poison, sizeof(oid_poison)) ||
	       oid_is(&oid, oid_sct_list, sizeof(oid_sct_list));
}

/* The extensions SEQUENCE inside [3]; *kept is the length of the extensions that stay. */
static int ext_kept(const struct der_elem *a3, struct der_elem *seq, size_t *kept,
		    const char **err)
{
	struct der outer = der_inner(a3), exts;
	struct der_elem ext, oid, value;

	*kept = 0;
	if (!der_expect(&outer, TAG_SEQUENCE, seq) || outer.n != 0) {
		*err = "the extensions are malformed";
		return -1;
	}
	exts = der_inner(seq);
	while (exts.n > 0) {
		if (!der_read(&exts, &ext) || !split_extension(&ext, &oid, &value)) {
			*err = "an extension is malformed";
			return -1;
		}
		if (!ext_dropped(&ext))
			*kept += ext.total;
	}
	return 0;
}

/* Size of the header for a content of len bytes. */
static size_t der_header_len(size_t len)
{
	uint8_t h[10];

	return der_header(h, 0, len);
}

static void digest_put(EVP_MD_CTX *dg, const void *p, size_t n)
{
	if (EVP_DigestUpdate(dg, p, n) != 1)
		fatalx("ct: SHA-256 failed");
}

static void digest_header(EVP_MD_CTX *dg, unsigned tag, size_t len)
{
	uint8_t h[10];

	digest_put(dg, h, der_header(h, tag, len));
}

/* Hash the [3] field with only the kept extensions (nothing when none remain). */
static void digest_extensions(EVP_MD_CTX *dg, const struct der_elem *seq, size_t kept)
{
	struct der exts = der_inner(seq);
	struct der_elem ext;

	if (kept == 0)
		return;
	digest_header(dg, TAG_EXTENSIONS, der_header_len(kept) + kept);
	digest_header(dg, TAG_SEQUENCE, kept);
	while (exts.n > 0 && der_read(&exts, &ext))
		if (!ext_dropped(&ext))
			digest_put(dg, ext.start, ext.total);
}

int ct_cert_identity(const uint8_t *der, size_t n, uint8_t out[CT_IDENTITY_LEN],
		     const char **err)
{
	struct der_elem tbs, e, seq = { 0 };
	EVP_MD_CTX *dg;
	struct der d;
	size_t content = 0, kept = 0;
	bool have_ext = false;

	if (find_tbs(der, n, &tbs, err) < 0)
		return -1;
	/* First pass: the length of the re-encoded content. */
	d = der_inner(&tbs);
	while (d.n > 0) {
		if (!der_read(&d, &e)) {
			*err = "the TBSCertificate is malformed";
			return -1;
		}
		if (e.tag != TAG_EXTENSIONS) {
			content += e.total;
			continue;
		}
		if (have_ext || ext_kept(&e, &seq, &kept, err) < 0) {
			*err = have_ext ? "the TBSCertificate has two extensions fields" : *err;
			return -1;
		}
		have_ext = true;
		if (kept > 0) {
			size_t inner = der_header_len(kept) + kept;

			content += der_header_len(inner) + inner;
		}
	}
	/* Second pass: hash the header and the elements, extensions rebuilt. */
	dg = EVP_MD_CTX_new();
	if (dg == NULL || EVP_DigestInit_ex(dg, EVP_sha256(), NULL) != 1)
		fatalx("ct: SHA-256 failed");
	digest_header(dg, TAG_SEQUENCE, content);
	d = der_inner(&tbs);
	while (d.n > 0 && der_read(&d, &e)) {
		if (e.tag == TAG_EXTENSIONS)
			digest_extensions(dg, &seq, kept);
		else
			digest_put(dg, e.start, e.total);
	}
	if (EVP_DigestFinal_ex(dg, out, NULL) != 1)
		fatalx("ct: SHA-256 failed");
	EVP_MD_CTX_free(dg);
	return 0;
}
