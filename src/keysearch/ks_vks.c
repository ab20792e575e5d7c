/*
 * ks_vks.c - keyservers: VKS (keys.openpgp.org's API, which hands out only addresses whose
 * owner confirmed them by mail) and HKP (classic keyservers: anyone may upload a key with
 * anyone's address, so their keys rank lowest). One GET per configured server; only the
 * searched address is sent. Also the mapping of HTTP results that WKD shares.
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "xmalloc.h"

struct ks_web {
	int handle;
	char *url;
};

bool ks_http_outcome(const struct http_response *resp, struct ks_outcome *o, const char *what)
{
	switch (resp->result) {
	case HTTP_OK:
		break;
	case HTTP_ERR_TIMEOUT:
		ks_outcome_set(o, KS_TIMEOUT, "%s: no answer in time", what);
		return false;
	case HTTP_ERR_TOO_BIG:
		ks_outcome_set(o, KS_ERROR, "%s: answer larger than max_response_size", what);
		return false;
	case HTTP_ERR_BLOCKED:
		ks_outcome_set(o, KS_BLOCKED, "%s: %s", what,
			       resp->error ? resp->error : "non-public address or redirect refused");
		return false;
	case HTTP_ERR_TLS:
	case HTTP_ERR_NO_HOST:
	case HTTP_ERR_CONNECT:
	case HTTP_ERR_OTHER:
		ks_outcome_set(o, KS_ERROR, "%s: %s", what, resp->error ? resp->error : "failed");
		return false;
	}
	if (resp->status == 404 || resp->status == 410) {
		ks_outcome_set(o, KS_NONE, "%s: HTTP %ld, no key", what, resp->status);
		return false;
	}
	if (resp->status != 200) {
		ks_outcome_set(o, KS_ERROR, "%s: HTTP %ld", what, resp->status);
		return false;
	}
	if (resp->len == 0) {
		ks_outcome_set(o, KS_NONE, "%s: empty answer", what);
		return false;
	}
	o->ttl = resp->max_age;
	return true;
}

static void ks_web_free(struct ks_web *w)
{
	if (w == NULL)
		return;
	free(w->url);
	free(w);
}

void ks_vks_cancel(struct ks_src *src)
{
	struct ks_web *w = ks_src_state(src);

	if (w == NULL)
		return;
	if (w->handle >= 0)
		http_cancel(ks_src_http(src), w->handle);
	ks_web_free(w);
	ks_src_set_state(src, NULL);
}

/* The answer of a VKS or HKP server. */
static void ks_vks_cb(struct http_response *resp, void *arg)
{
	struct ks_src *src = arg;
	struct ks_web *w = ks_src_state(src);
	struct ks_outcome *o = ks_src_outcome(src);
	bool hkp = strstr(w->url, "/pks/lookup?") != NULL;
	enum ks_trust trust = hkp ? KS_TRUST_HKP : KS_TRUST_VKS;

	w->handle = -1;
	if (ks_http_outcome(resp, o, hkp ? "HKP" : "VKS")) {
		size_t n = ks_body_keys((const uint8_t *)resp->body, resp->len, ks_src_address(src),
					(int64_t)time(NULL), trust, w->url, o);
		if (n)
			ks_outcome_set(o, KS_FOUND, "%zu key(s)", n);
		else if (ks_outcome_all_garbage(o))
			ks_outcome_set(o, KS_ERROR, "HTTP 200 without an OpenPGP key: broken server?");
		else
			ks_outcome_set(o, KS_NONE, "%zu key(s) refused: %s", o->refused,
				       o->refusal ? o->refusal : "none usable");
	}
	http_response_free(resp);
	ks_web_free(w);
	ks_src_set_state(src, NULL);
	ks_src_done(src);
}

/* GET url for src; finishes the source when the request cannot start. */
static void ks_web_get(struct ks_src *src, char *url, http_cb cb)
{
	struct ks_web *w = xcalloc(1, sizeof(*w));
	struct http_request_opts ro = {
		.timeout_ms = ks_src_time_left_ms(src),
		.max_body = (size_t)ks_src_conf(src)->max_response_size,
		.follow_https_redirects = true,
	};

	w->url = url;
	ks_src_set_state(src, w);
	w->handle = http_get(ks_src_http(src), url, &ro, cb, src);
	if (w->handle < 0) {
		ks_outcome_set(ks_src_outcome(src), KS_ERROR, "request could not start");
		ks_web_free(w);
		ks_src_set_state(src, NULL);
		ks_src_done(src);
	}
}

void ks_vks_start(struct ks_src *src)
{
	char *enc = http_urlencode(ks_src_address(src));

	ks_web_get(src, xasprintf("%s/vks/v1/by-email/%s", ks_src_server(src), enc), ks_vks_cb);
	free(enc);
}

void ks_hkp_start(struct ks_src *src)
{
	char *enc = http_urlencode(ks_src_address(src));

	ks_web_get(src, xasprintf("%s/pks/lookup?op=get&options=mr&exact=on&search=%s",
				  ks_src_server(src), enc), ks_vks_cb);
	free(enc);
}
