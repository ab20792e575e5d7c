/*
 * carddav_xml.h - a small bounded reader of the WebDAV multistatus answers a CardDAV client
 * needs (RFC 4918 PROPFIND, RFC 6352 REPORT addressbook-multiget, RFC 6578 sync-collection).
 *
 * It is not a general XML parser: it knows elements, attributes (skipped), character data
 * with the five predefined entities and character references, CDATA sections, comments and
 * processing instructions. A DOCTYPE is refused (no entity expansion, ever). Elements are
 * matched by local name; the DAV: and CardDAV names it looks for do not collide. Character
 * data is kept as sent: line ends are not normalised, so address-data keeps its CRLF and a
 * vCard comes out byte for byte as the server stored it.
 */
#ifndef PW_CARDDAV_XML_H
#define PW_CARDDAV_XML_H

#include <stdbool.h>
#include <stddef.h>

#define DAV_XML_MAX		(64 * 1024 * 1024)	/* one multistatus body */
#define DAV_XML_MAX_DEPTH	32
#define DAV_XML_MAX_RESPONSES	100000

struct dav_resp {
	char *href;		/* the response's own href, as sent (percent-encoded) */
	int status;		/* the response's status, or the 2xx propstat's; 0 when none */
	bool collection, addressbook;	/* resourcetype */
	bool sync_collection;	/* supported-report-set names sync-collection */
	char *displayname;	/* each of these NULL when absent */
	char *etag;
	char *address_data;
	char *principal;	/* current-user-principal's href */
	char *home;		/* addressbook-home-set's (first) href */
};

struct dav_ms {
	struct dav_resp *resp;
	size_t n;
	char *sync_token;	/* a sync-collection answer's token, or NULL */
};

/* Parse a multistatus body; 0, or -1 with *err (static text). out is freed by dav_ms_free. */
int dav_ms_parse(const char *xml, size_t len, struct dav_ms *out, const char **err);
void dav_ms_free(struct dav_ms *ms);

/* XML-escape s into a new string (for hrefs in a REPORT body). */
char *dav_xml_escape(const char *s);

#endif
