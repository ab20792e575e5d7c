/*
 * ks_wkd.c - the Web Key Directory source (draft-koch-openpgp-webkey-service): the advanced
 * method first (https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL),
 * then, as the draft says, the direct method (https://DOMAIN/.well-known/openpgpkey/hu/HASH
 * ?l=LOCAL) only when the advanced host cannot be reached (its name does not resolve, or
 * nothing listens): a host that answers, even 404, is the domain's answer. A domain where
 * neither name resolves has no WKD: "none", cached like any negative answer. HTTPS only;
 * redirects only to HTTPS (http.h); the body is bounded by max_response_size. The domain operator vouches for the key, so WKD ranks above
 * keyservers but below signed DNS.
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "strutil.h"
#include "xmalloc.h"

struct ks_wkd {
	int handle;
	int step;		/* 0: advanced, 1: direct */
	bool advanced_missing;	/* openpgpkey.DOMAIN did not resolve */
	char *url;
	char *advanced;		/* what the advanced method answered */
};

static void ks_wkd_free(struct ks_wkd *w)
{
	if (w == NULL)
		return;
	free(w->url);
	free(w->advanced);
	free(w);
}

void ks_wkd_cancel(struct ks_src *src)
{
	struct ks_wkd *w = ks_src_state(src);

	if (w == NULL)
		return;
	if (w->handle >= 0)
		http_cancel(ks_src_http(src), w->handle);
	ks_wkd_free(w);
	ks_src_set_state(src, NULL);
}

/* The URL of a method, or NULL when the address has no usable domain. */
static char *ks_wkd_url(const char *address, int step)
{
	const char *at = strrchr(address, '@');
	char *local, *domain, *hash, *enc, *url;

	if (at == NULL || at == address || at[1] == '\0')
		return NULL;
	local = xstrndup(address, (size_t)(at - address));
	domain = str_lower(xstrdup(at + 1));
	hash = keys_wkd_hash(local);
	enc = http_urlencode(local);
	if (hash == NULL || strpbrk(domain, "/?#@:[]\\ ") != NULL)
		url = NULL;
	else if (step == 0)
		url = xasprintf("https://openpgpkey.%s/.well-known/openpgpkey/%s/hu/%s?l=%s",
				domain, domain, hash, enc);
	else
		url = xasprintf("https://%s/.well-known/openpgpkey/hu/%s?l=%s", domain, hash, enc);
	free(local);
	free(domain);
	free(hash);
	free(enc);
	return url;
}

static void ks_wkd_get(struct ks_src *src, struct ks_wkd *w);

/* The host could not be reached at all: for the advanced method, try the direct one. */
static bool ks_wkd_unreachable(const struct http_response *resp)
{
	return resp->result == HTTP_ERR_CONNECT || resp->result == HTTP_ERR_NO_HOST;
}

/* The host name does not exist: the domain has no WKD, which is "no key", not an error. */
static bool ks_wkd_no_such_host(const struct http_response *resp)
{
	return resp->result == HTTP_ERR_NO_HOST;
}

static void ks_wkd_finish(struct ks_src *src, struct ks_wkd *w)
{
	ks_wkd_free(w);
	ks_src_set_state(src, NULL);
	ks_src_done(src);
}

static void ks_wkd_cb(struct http_response *resp, void *arg)
{
	struct ks_src *src = arg;
	struct ks_wkd *w = ks_src_state(src);
	struct ks_outcome *o = ks_src_outcome(src);
	bool advanced = w->step == 0;
	const char *what = advanced ? "advanced" : "direct";
	size_t n = 0;

	w->handle = -1;
	if (ks_http_outcome(resp, o, what)) {
		n = ks_body_keys((const uint8_t *)resp->body, resp->len, ks_src_address(src),
				 (int64_t)time(NULL), KS_TRUST_WKD, w->url, o);
		if (n)
			ks_outcome_set(o, KS_FOUND, "%s: %zu key(s)", what, n);
		else if (ks_outcome_all_garbage(o))
			ks_outcome_set(o, KS_ERROR, "%s: HTTP 200 without an OpenPGP key", what);
		else
			ks_outcome_set(o, KS_NONE, "%s: %zu key(s) refused: %s", what, o->refused,
				       o->refusal ? o->refusal : "none usable");
	}
	if (advanced && ks_wkd_unreachable(resp)) {
		w->advanced_missing = ks_wkd_no_such_host(resp);
		w->advanced = xstrdup(o->detail ? o->detail : what);
		http_response_free(resp);
		w->step = 1;
		free(w->url);
		w->url = ks_wkd_url(ks_src_address(src), 1);
		ks_wkd_get(src, w);
		return;
	}
	if (!advanced && w->advanced_missing && ks_wkd_no_such_host(resp)) {
		ks_outcome_set(o, KS_NONE, "no Web Key Directory: neither openpgpkey.DOMAIN nor "
					   "DOMAIN resolves");
	} else if (!advanced && n == 0) {
		/* Why the advanced method was passed over matters when direct had nothing. */
		char *d = xasprintf("%s; %s", w->advanced, o->detail);

		ks_outcome_set(o, o->status, "%s", d);
		free(d);
	}
	http_response_free(resp);
	ks_wkd_finish(src, w);
}

static void ks_wkd_get(struct ks_src *src, struct ks_wkd *w)
{
	struct http_request_opts ro = {
		.timeout_ms = ks_src_time_left_ms(src),
		.max_body = (size_t)ks_src_conf(src)->max_response_size,
		.follow_https_redirects = true,
	};

	w->handle = w->url ? http_get(ks_src_http(src), w->url, &ro, ks_wkd_cb, src) : -1;
	if (w->handle < 0) {
		ks_outcome_set(ks_src_outcome(src), KS_ERROR, "%s%srequest could not start",
			       w->advanced ? w->advanced : "", w->advanced ? "; direct: " : "");
		ks_wkd_finish(src, w);
	}
}

void ks_wkd_start(struct ks_src *src)
{
	struct ks_wkd *w = xcalloc(1, sizeof(*w));

	w->handle = -1;
	w->url = ks_wkd_url(ks_src_address(src), 0);
	ks_src_set_state(src, w);
	ks_wkd_get(src, w);
}
