/*
 * ct_loglist.c - reading a v3 CT log list (JSON) into checked logs.
 *
 * A log list comes from outside (a file or an https URL), so everything in it is checked
 * before a log is kept: the key must parse as a DER SubjectPublicKeyInfo of an accepted
 * type and hash to the advertised log_id (a list that pairs an id with another log's key
 * would otherwise make us verify that log's tree heads with the wrong key).
 */
#include <jansson.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctmon/ct_loglist.h"
#include "xmalloc.h"

#define CT_B64_INVALID 0xff
#define CT_KEY_MAX_DER 4096	/* an RSA-8192 SPKI is about 1.1 KB */
#define CT_URL_MAX 2048

static const char ct_state_names[][10] = {
	[CT_STATE_NONE] = "none",	   [CT_STATE_USABLE] = "usable",
	[CT_STATE_QUALIFIED] = "qualified", [CT_STATE_READONLY] = "readonly",
	[CT_STATE_PENDING] = "pending",	   [CT_STATE_RETIRED] = "retired",
	[CT_STATE_REJECTED] = "rejected",
};

const char *ct_log_state_name(enum ct_log_state state)
{
	if ((size_t)state >= sizeof(ct_state_names) / sizeof(ct_state_names[0]))
		return "unknown";
	return ct_state_names[state];
}

static uint8_t ct_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (uint8_t)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (uint8_t)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (uint8_t)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return CT_B64_INVALID;
}

/* Decode one group of four characters; npad is how many of them are '='. */
static bool ct_b64_group(const char *s, size_t npad, uint8_t *out)
{
	uint8_t v[4] = { 0, 0, 0, 0 };

	for (size_t i = 0; i < 4 - npad; i++) {
		v[i] = ct_b64_value((unsigned char)s[i]);
		if (v[i] == CT_B64_INVALID)
			return false;
	}
	/* Non-zero unused bits would give one value two encodings. */
	if ((npad == 1 && (v[2] & 0x03)) || (npad == 2 && (v[1] & 0x0f)))
		return false;
	out[0] = (uint8_t)(v[0] << 2 | v[1] >> 4);
	out[1] = (uint8_t)(v[1] << 4 | v[2] >> 2);
	out[2] = (uint8_t)(v[2] << 6 | v[3]);
	return true;
}

bool ct_b64_decode(const char *s, size_t len, size_t max, uint8_t **out, size_t *outlen)
{
	size_t npad = 0, n;
	uint8_t *buf;

	if (len % 4 != 0)
		return false;
	if (len > 0 && s[len - 1] == '=')
		npad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
	n = len / 4 * 3 - npad;
	if (n > max)
		return false;
	buf = xmalloc(n + 3);
	for (size_t i = 0; i < len; i += 4) {
		size_t pad = (i + 4 == len) ? npad : 0;

		if (!ct_b64_group(s + i, pad, buf + i / 4 * 3)) {
			free(buf);
			return false;
		}
	}
	*out = buf;
	*outlen = n;
	return true;
}

/* A JSON string member's value, or NULL when absent or not a string. */
static const char *ct_json_str(const json_t *o, const char *key, size_t *len)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		return NULL;
	if (len)
		*len = json_string_length(v);
	return json_string_value(v);
}

/* An https:// URL (or http:// when allowed) with a host and no space or control bytes. */
static bool ct_url_ok(const char *url, size_t len, bool allow_http)
{
	size_t skip;

	if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else if (allow_http && strncmp(url, "http://", 7) == 0)
		skip = 7;
	else
		return false;
	if (len <= skip || len > CT_URL_MAX || url[skip] == '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
			return false;
	return true;
}

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac]Z" in UTC to unix seconds. */
static bool ct_parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n != 19)
		return false;
	p = s + n;
	if (*p == '.') {
		do
			p++;
		while (*p >= '0' && *p <= '9');
	}
	if (strcmp(p, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || y < 1970)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm);
	return true;
}

/* The state object has exactly one member, named after the state. */
static bool ct_parse_state(const json_t *o, enum ct_log_state *state)
{
	const json_t *st = json_object_get(o, "state");
	const char *name;

	if (st == NULL) {
		*state = CT_STATE_NONE;
		return true;
	}
	if (!json_is_object(st) || json_object_size(st) != 1)
		return false;
	name = json_object_iter_key(json_object_iter((json_t *)st));
	for (size_t i = CT_STATE_USABLE; i <= CT_STATE_REJECTED; i++) {
		if (strcmp(name, ct_state_names[i]) == 0) {
			*state = (enum ct_log_state)i;
			return true;
		}
	}
	return false;
}

/* Load the DER key and check its type; NULL and *reason when it is not acceptable. */
static EVP_PKEY *ct_load_key(const uint8_t *der, size_t len, enum ct_key_type *type,
			     const char **reason)
{
	const unsigned char *p = der;
	EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)len);
	char group[64];

	if (key == NULL || p != der + len) {
		*reason = "its key is not a DER SubjectPublicKeyInfo";
		EVP_PKEY_free(key);
		return NULL;
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		if (EVP_PKEY_get_group_name(key, group, sizeof(group), NULL) == 1 &&
		    strcmp(group, "prime256v1") == 0) {
			*type = CT_KEY_ECDSA_P256;
			return key;
		}
		*reason = "its key is ECDSA on a curve other than P-256";
	} else if (EVP_PKEY_is_a(key, "RSA")) {
		if (EVP_PKEY_get_bits(key) >= 2048) {
			*type = CT_KEY_RSA;
			return key;
		}
		*reason = "its key is RSA shorter than 2048 bits";
	} else {
		*reason = "its key is neither ECDSA P-256 nor RSA";
	}
	EVP_PKEY_free(key);
	return NULL;
}

/* log_id and key: decoded, loaded and checked against each other. */
static const char *ct_parse_key(const json_t *o, struct ct_log *log)
{
	const char *id_b64, *key_b64, *reason = NULL;
	size_t id_len = 0, key_len = 0, n = 0;
	uint8_t *id = NULL, *der = NULL, digest[SHA256_DIGEST_LENGTH];

	id_b64 = ct_json_str(o, "log_id", &id_len);
	key_b64 = ct_json_str(o, "key", &key_len);
	if (id_b64 == NULL || key_b64 == NULL)
		return "it lacks log_id or key";
	if (!ct_b64_decode(id_b64, id_len, CT_LOG_ID_LEN, &id, &n) || n != CT_LOG_ID_LEN) {
		free(id);
		return "its log_id is not 32 bytes in base64";
	}
	memcpy(log->log_id, id, CT_LOG_ID_LEN);
	free(id);
	if (!ct_b64_decode(key_b64, key_len, CT_KEY_MAX_DER, &der, &n))
		return "its key is not base64 (or too long)";
	SHA256(der, n, digest);
	if (memcmp(digest, log->log_id, CT_LOG_ID_LEN) != 0)
		reason = "its log_id is not the SHA-256 of its key";
	else
		log->key = ct_load_key(der, n, &log->key_type, &reason);
	free(der);
	return reason;
}

/* A URL member, checked and copied; NULL on success, else the reason. */
static const char *ct_parse_url(const json_t *o, const char *name, bool allow_http,
				char **out)
{
	size_t len;
	const char *url = ct_json_str(o, name, &len);

	if (url == NULL)
		return name[0] == 'u' ? "it lacks url" :
		       name[0] == 's' ? "it lacks submission_url" : "it lacks monitoring_url";
	if (strlen(url) != len || !ct_url_ok(url, len, allow_http))
		return allow_http ? "a URL of it is not http(s):// with a host" :
				    "a URL of it is not https:// with a host";
	*out = xstrndup(url, len);
	return NULL;
}

static const char *ct_parse_urls(const json_t *o, enum ct_log_api api, bool allow_http,
				 struct ct_log *log)
{
	const char *reason;

	if (api == CT_API_RFC6962)
		return ct_parse_url(o, "url", allow_http, &log->url);
	reason = ct_parse_url(o, "submission_url", allow_http, &log->submission_url);
	if (reason == NULL)
		reason = ct_parse_url(o, "monitoring_url", allow_http, &log->monitoring_url);
	return reason;
}

static const char *ct_parse_interval(const json_t *o, struct ct_log *log)
{
	const json_t *ti = json_object_get(o, "temporal_interval");
	const char *start, *end;

	if (ti == NULL)
		return NULL;
	start = ct_json_str(ti, "start_inclusive", NULL);
	end = ct_json_str(ti, "end_exclusive", NULL);
	if (start == NULL || end == NULL || !ct_parse_time(start, &log->interval_start) ||
	    !ct_parse_time(end, &log->interval_end) ||
	    log->interval_end <= log->interval_start)
		return "its temporal_interval is not two RFC 3339 times, start before end";
	log->has_interval = true;
	return NULL;
}

static void ct_log_clear(struct ct_log *log)
{
	free(log->description);
	free(log->operator_name);
	EVP_PKEY_free(log->key);
	free(log->url);
	free(log->submission_url);
	free(log->monitoring_url);
	memset(log, 0, sizeof(*log));
}

/* Everything but the key, which is the costly part and comes last. */
static const char *ct_parse_fields(const json_t *o, struct ct_log *log)
{
	const char *desc;
	size_t len;
	const json_t *mmd;

	if (!json_is_object(o))
		return "it is not a JSON object";
	desc = ct_json_str(o, "description", &len);
	if (desc == NULL)
		return "it lacks description";
	log->description = xstrndup(desc, len);
	mmd = json_object_get(o, "mmd");
	if (!json_is_integer(mmd) || json_integer_value(mmd) < 0)
		return "its mmd is not a non-negative integer";
	log->mmd = (int64_t)json_integer_value(mmd);
	if (!ct_parse_state(o, &log->state))
		return "its state is not one of usable, qualified, readonly, pending, "
		       "retired, rejected";
	return NULL;
}

/* Room for element n of an array that doubles at powers of two: linear over 10,000 logs. */
static void *ct_grow(void *arr, size_t n, size_t size)
{
	if (n == 0)
		return xreallocarray(arr, 8, size);
	if (n >= 8 && (n & (n - 1)) == 0)
		return xreallocarray(arr, n * 2, size);
	return arr;
}

static void ct_add_skip(struct ct_loglist *list, const char *what, const char *reason,
			enum ct_log_state state)
{
	struct ct_log_skip *s;

	list->skipped = ct_grow(list->skipped, list->nskipped, sizeof(*s));
	s = &list->skipped[list->nskipped++];
	s->what = xstrdup(what);
	s->reason = xstrdup(reason);
	s->state = state;
	if (state == CT_STATE_RETIRED)
		list->nretired++;
	else if (state == CT_STATE_REJECTED)
		list->nrejected++;
}

/*
 * Whether a kept log has this id: two entries for one log would give it two states and
 * two URLs. Linear, so quadratic over the list: 50 million comparisons at 10,000 logs.
 */
static bool ct_listed(const struct ct_loglist *list, const uint8_t id[CT_LOG_ID_LEN])
{
	for (size_t i = 0; i < list->nlogs; i++)
		if (memcmp(list->logs[i].log_id, id, CT_LOG_ID_LEN) == 0)
			return true;
	return false;
}

/* Parse one log; kept in list->logs, or recorded as skipped with the reason. */
static void ct_parse_log(const json_t *o, const char *op_name, enum ct_log_api api,
			 const char *where, const struct ct_loglist_opts *opts,
			 struct ct_loglist *list)
{
	struct ct_log log;
	const char *reason;
	enum ct_log_state skip_state = CT_STATE_NONE;

	memset(&log, 0, sizeof(log));
	log.api = api;
	reason = ct_parse_fields(o, &log);
	if (reason == NULL && (log.state == CT_STATE_RETIRED || log.state == CT_STATE_REJECTED)) {
		skip_state = log.state;
		reason = log.state == CT_STATE_RETIRED ? "it is retired" : "it is rejected";
	}
	if (reason == NULL)
		reason = ct_parse_urls(o, api, opts->allow_http, &log);
	if (reason == NULL)
		reason = ct_parse_interval(o, &log);
	if (reason == NULL)
		reason = ct_parse_key(o, &log);
	if (reason == NULL && ct_listed(list, log.log_id))
		reason = "its log_id is listed already";
	if (reason != NULL) {
		ct_add_skip(list, log.description ? log.description : where, reason, skip_state);
		ct_log_clear(&log);
		return;
	}
	log.operator_name = op_name ? xstrdup(op_name) : NULL;
	list->logs = ct_grow(list->logs, list->nlogs, sizeof(log));
	list->logs[list->nlogs++] = log;
}

/* Count the logs first: the bound is checked before any key is loaded. */
static size_t ct_count_logs(const json_t *ops)
{
	size_t i, total = 0;
	const json_t *op;

	json_array_foreach(ops, i, op) {
		total += json_array_size(json_object_get(op, "logs"));
		total += json_array_size(json_object_get(op, "tiled_logs"));
	}
	return total;
}

static void ct_parse_array(const json_t *op, size_t opi, const char *key, enum ct_log_api api,
			   const struct ct_loglist_opts *opts, struct ct_loglist *list)
{
	const json_t *arr = json_object_get(op, key), *o;
	const char *op_name = ct_json_str(op, "name", NULL);
	char where[96];
	size_t i;

	if (!json_is_object(op)) {
		if (api == CT_API_RFC6962) {
			snprintf(where, sizeof(where), "operators[%zu]", opi);
			ct_add_skip(list, where, "the operator is not a JSON object",
				    CT_STATE_NONE);
		}
		return;
	}
	if (arr == NULL)
		return;
	if (!json_is_array(arr)) {
		snprintf(where, sizeof(where), "operators[%zu].%s", opi, key);
		ct_add_skip(list, where, "it is not an array", CT_STATE_NONE);
		return;
	}
	json_array_foreach(arr, i, o) {
		snprintf(where, sizeof(where), "operators[%zu].%s[%zu]", opi, key, i);
		ct_parse_log(o, op_name, api, where, opts, list);
	}
}

static int ct_fail(char **err, const char *msg)
{
	*err = xstrdup(msg);
	return -1;
}

int ct_loglist_parse(const char *data, size_t len, const struct ct_loglist_opts *opts,
		     struct ct_loglist **out, char **err)
{
	static const struct ct_loglist_opts defaults = { .allow_http = false };
	json_error_t jerr;
	json_t *root, *ops, *op;
	struct ct_loglist *list;
	size_t i;

	*out = NULL;
	*err = NULL;
	if (opts == NULL)
		opts = &defaults;
	if (len > CT_LOGLIST_MAX_BYTES)
		return ct_fail(err, "the log list is larger than 16 MiB");
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*err = xasprintf("the log list is not JSON: %s (line %d)", jerr.text, jerr.line);
		return -1;
	}
	ops = json_object_get(root, "operators");
	if (!json_is_array(ops)) {
		json_decref(root);
		return ct_fail(err, "the log list has no \"operators\" array");
	}
	if (ct_count_logs(ops) > CT_LOGLIST_MAX_LOGS) {
		json_decref(root);
		return ct_fail(err, "the log list has more than 10000 logs");
	}
	list = xcalloc(1, sizeof(*list));
	json_array_foreach(ops, i, op) {
		ct_parse_array(op, i, "logs", CT_API_RFC6962, opts, list);
		ct_parse_array(op, i, "tiled_logs", CT_API_STATIC, opts, list);
	}
	json_decref(root);
	*out = list;
	return 0;
}

void ct_loglist_free(struct ct_loglist *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->nlogs; i++)
		ct_log_clear(&list->logs[i]);
	for (size_t i = 0; i < list->nskipped; i++) {
		free(list->skipped[i].what);
		free(list->skipped[i].reason);
	}
	free(list->logs);
	free(list->skipped);
	free(list);
}
