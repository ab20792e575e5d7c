/*
 * ks_json.c - a search result as JSON (the search endpoint and "keys search --json"), in the
 * webmail plugins' {"results":[...]} shape, and as text for the command line.
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

bool ks_type_parse(const char *s, enum ks_type *type)
{
	if (strcmp(s, "any") == 0)
		*type = KS_TYPE_ANY;
	else if (strcmp(s, "openpgp") == 0 || strcmp(s, "open_pgp") == 0)
		*type = KS_TYPE_OPENPGP;
	else if (strcmp(s, "smime") == 0)
		*type = KS_TYPE_SMIME;
	else
		return false;
	return true;
}

const char *ks_type_name(enum ks_type type)
{
	return type == KS_TYPE_OPENPGP ? "openpgp" : type == KS_TYPE_SMIME ? "smime" : "any";
}

static json_t *ks_key_json(const struct ks_key *k, bool recommended)
{
	json_t *srcs = json_array(), *j;
	char *text = keys_text(k->hit.kind, k->hit.data, k->hit.len);

	for (size_t i = 0; i < k->nsrcs; i++)
		json_array_append_new(srcs, json_pack("{s:s, s:s*, s:s, s:s}", "source",
						      k->srcs[i].source, "server", k->srcs[i].server,
						      "trust", ks_trust_name(k->srcs[i].trust),
						      "where", k->srcs[i].where));
	j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:b, s:b, s:o, s:s?}",
		      "kind", keys_kind_name(k->hit.kind), "fingerprint", k->hit.fingerprint,
		      "algorithm", k->hit.algorithm, "bits", (json_int_t)k->hit.bits,
		      "created", (json_int_t)k->hit.created, "expires", (json_int_t)k->hit.expires,
		      "user_id", k->hit.uid, "trust", ks_trust_name(k->trust), "verified",
		      ks_trust_verified(k->trust), "recommended", recommended, "sources", srcs,
		      "key", text);
	free(text);
	return j;
}

static json_t *ks_reports_json(const struct ks_result *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->nreports; i++) {
		const struct ks_report *rep = &r->reports[i];

		json_array_append_new(a, json_pack("{s:s, s:s*, s:s, s:s, s:I, s:b}", "source",
						   rep->source, "server", rep->server, "status",
						   ks_status_name(rep->status), "detail", rep->detail,
						   "elapsed_ms", (json_int_t)rep->elapsed_ms, "cached",
						   rep->cached));
	}
	return a;
}

json_t *ks_result_json(const struct ks_result *r)
{
	json_t *keys = json_array();
	const struct ks_key *rec = r->recommended >= 0 ? &r->keys[r->recommended] : NULL;

	for (size_t i = 0; i < r->nkeys; i++)
		json_array_append_new(keys, ks_key_json(&r->keys[i], (long)i == r->recommended));
	return json_pack("{s:s, s:s, s:b, s:s?, s:o, s:o, s:I, s:b}", "email", r->address,
			 "type", ks_type_name(r->type), "found", r->nkeys > 0, "recommended",
			 rec ? rec->hit.fingerprint : NULL, "keys", keys, "sources",
			 ks_reports_json(r), "elapsed_ms", (json_int_t)r->elapsed_ms,
			 "complete", r->complete);
}

/*
 * Plugins use a key only when there is exactly one result, so only the recommended key is
 * returned: listing every candidate would make them use none.
 */
json_t *ks_public_keys_json(const struct ks_result *r)
{
	json_t *results = json_array();

	if (r->recommended >= 0) {
		const struct ks_key *k = &r->keys[r->recommended];
		char *text = keys_text(k->hit.kind, k->hit.data, k->hit.len);

		if (text)
			json_array_append_new(results, json_pack("{s:b, s:s, s:s, s:s}", "verified",
				ks_trust_verified(k->trust), "content", text, "fingerprint",
				k->hit.fingerprint, "trust", ks_trust_name(k->trust)));
		free(text);
	}
	return json_pack("{s:o, s:b}", "results", results, "complete", r->complete);
}

const char *ks_result_body(struct ks_result *r, bool public_keys)
{
	char **body = &r->body[public_keys ? 1 : 0];

	if (*body == NULL) {
		json_t *j = public_keys ? ks_public_keys_json(r) : ks_result_json(r);
		char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

		if (s == NULL)
			fatalx("cannot serialise a search result");
		*body = xasprintf("%s\n", s);
		free(s);
		json_decref(j);
	}
	return *body;
}

void ks_result_print(const struct ks_result *r, FILE *out)
{
	for (size_t i = 0; i < r->nkeys; i++) {
		const struct ks_key *k = &r->keys[i];
		char created[16], expires[16];

		format_date(k->hit.created, created, sizeof(created));
		format_date(k->hit.expires, expires, sizeof(expires));
		fprintf(out, "%s%s %s %s/%u created=%s expires=%s trust=%s uid=%s\n",
			(long)i == r->recommended ? "* " : "  ", keys_kind_name(k->hit.kind),
			k->hit.fingerprint, k->hit.algorithm, k->hit.bits, created, expires,
			ks_trust_name(k->trust), k->hit.uid);
		for (size_t j = 0; j < k->nsrcs; j++)
			fprintf(out, "    from %s%s%s (%s) %s\n", k->srcs[j].source,
				k->srcs[j].server ? " " : "",
				k->srcs[j].server ? k->srcs[j].server : "",
				ks_trust_name(k->srcs[j].trust), k->srcs[j].where);
	}
	if (r->nkeys == 0)
		fprintf(out, "no key found for %s\n", r->address);
	for (size_t i = 0; i < r->nreports; i++) {
		const struct ks_report *rep = &r->reports[i];

		fprintf(out, "source %s%s%s: %s (%s)%s %lld ms\n", rep->source,
			rep->server ? " " : "", rep->server ? rep->server : "",
			ks_status_name(rep->status), rep->detail, rep->cached ? " cached" : "",
			(long long)rep->elapsed_ms);
	}
}
