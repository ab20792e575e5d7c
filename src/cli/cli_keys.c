/*
 * cli_keys.c - "postwarden keys": publish, unpublish, list and show users' public keys
 * (OpenPGP and S/MIME) in the key directory, and sync what DNS and WKD hold with the store.
 *
 * Publishing stores the key first and then tries the DNS update once; when that fails the
 * key is stored, its names stay pending and serve retries them (see keydir.h).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "account.h"
#include "buf.h"
#include "cli.h"
#include "keydir/keydir.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define KEYS_BATCH_LINE 8192	/* longest line of a --batch list */
#define KEYS_BATCH_CHUNK 512	/* keys read, then checked in parallel, at a time */

static const char keys_usage[] =
	"keys publish ADDR FILE [--json]\n"
	"       postwarden keys publish --batch LIST [--json]\n"
	"       postwarden keys unpublish ADDR [--fingerprint FPR] [--json]\n"
	"       postwarden keys list [ADDR] [--json]\n"
	"       postwarden keys show ADDR [--json]\n"
	"       postwarden keys sync [--json]\n"
	"       postwarden keys search ADDR [--json] [--type openpgp|smime|any]";

static const char keys_help[] =
	"\n"
	"FILE is an OpenPGP public key (armored or binary) or an X.509 certificate (PEM or\n"
	"DER) for S/MIME; \"-\" reads standard input. The key is checked and published for each\n"
	"address of ADDR's account that it carries, as OPENPGPKEY or SMIMEA records and in\n"
	"the Web Key Directory. sync compares DNS and WKD with the stored keys and repairs both.\n"
	"--batch LIST (\"-\": stdin) publishes many keys at once: one \"ADDR FILE\" per line\n"
	"(blank lines and lines starting with # are skipped); every key is checked and stored,\n"
	"then DNS is updated for all of them together, many names to an UPDATE message.\n"
	"search asks the directory, DNS, WKD and keyservers ([keysearch] sources) at once for\n"
	"ADDR's keys and marks the one to use with \"*\"; exit 1 when none was found.\n";

static void keys_json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	puts(s);
	free(s);
	json_decref(j);
}

/* Read FILE ("-": stdin) up to KEYS_MAX_UPLOAD bytes; NULL after reporting. */
static uint8_t *keys_read_input(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	uint8_t *data;
	size_t n;

	if (f == NULL) {
		fprintf(pw_stderr, "postwarden: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	data = xmalloc(KEYS_MAX_UPLOAD + 1);
	n = fread(data, 1, KEYS_MAX_UPLOAD + 1, f);
	if (ferror(f) || n > KEYS_MAX_UPLOAD) {
		if (ferror(f))
			fprintf(pw_stderr, "postwarden: cannot read %s\n", path);
		else
			fprintf(pw_stderr, "postwarden: %s is larger than %d bytes: not a public key\n",
				path, KEYS_MAX_UPLOAD);
		free(data);
		data = NULL;
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return data;
}

static json_t *keys_changes_json(const struct keydir_report *rep)
{
	json_t *a = json_array();

	for (size_t i = 0; i < rep->nchanges; i++) {
		const struct keydir_change *c = &rep->changes[i];
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s}", "action", c->action,
						   "where", c->where, "name", c->name, "type",
						   c->type));
	}
	return a;
}

/* After a change: report what reconciling did, or that it will be retried. */
static void keys_report_text(const struct keydir_report *rep)
{
	for (size_t i = 0; i < rep->nchanges; i++)
		printf("%s\t%s\t%s\t%s\n", rep->changes[i].action, rep->changes[i].where,
		       rep->changes[i].type, rep->changes[i].name);
	if (rep->failed)
		fprintf(pw_stderr, "postwarden: warning: %zu name(s) not updated yet, serve retries "
				"them: %s\n", rep->failed, rep->error ? rep->error : "");
}

static json_t *keys_result_json(const struct keydir_report *rep)
{
	return json_pack("{s:o, s:b, s:s?}", "changes", keys_changes_json(rep), "pending",
			 rep->failed > 0, "error", rep->error);
}

static int keys_publish(struct keydir *kd, const char *addr, const char *path, bool json)
{
	struct account *acct = account_find(kd->db, addr);
	struct keydir_report rep = { 0 };
	struct keys_info info;
	uint8_t *data;
	size_t len;
	char *msg = NULL;
	int64_t now = (int64_t)time(NULL);

	if (acct == NULL) {
		fprintf(pw_stderr, "postwarden: no account has the address %s\n", addr);
		return 1;
	}
	data = keys_read_input(path, &len);
	if (data == NULL) {
		account_free(acct);
		return 1;
	}
	if (keydir_publish(kd, acct, data, len, now, &info, &msg) < 0) {
		fprintf(pw_stderr, "postwarden: %s\n", msg ? msg : "the key was refused");
		free(msg);
		free(data);
		account_free(acct);
		return 1;
	}
	free(data);
	account_free(acct);
	keydir_reconcile(kd, false, now, &rep);
	if (json) {
		json_t *j = keys_result_json(&rep), *addrs = json_array();
		for (size_t i = 0; i < info.ncopies; i++)
			json_array_append_new(addrs, json_string(info.copies[i].address));
		json_object_set_new(j, "addresses", addrs);
		json_object_set_new(j, "kind", json_string(keys_kind_name(info.kind)));
		json_object_set_new(j, "fingerprint", json_string(info.fingerprint));
		json_object_set_new(j, "algorithm", json_string(info.algorithm));
		json_object_set_new(j, "bits", json_integer(info.bits));
		json_object_set_new(j, "created", json_integer(info.created));
		json_object_set_new(j, "expires", json_integer(info.expires));
		keys_json_print(j);
	} else {
		for (size_t i = 0; i < info.ncopies; i++)
			printf("published %s key %s for %s\n", keys_kind_name(info.kind),
			       info.fingerprint, info.copies[i].address);
		keys_report_text(&rep);
	}
	keys_info_free(&info);
	keydir_report_free(&rep);
	return 0;
}

/* One line of a --batch list that was not published. */
struct keys_refusal {
	size_t line;
	char *address;
	char *error;
};

struct keys_batch {
	size_t published;	/* keys stored */
	size_t copies;		/* addresses they were stored for */
	struct keys_refusal *refused;
	size_t nrefused;
};

static void keys_batch_refuse(struct keys_batch *b, size_t line, const char *addr,
			      const char *error)
{
	b->refused = xreallocarray(b->refused, b->nrefused + 1, sizeof(*b->refused));
	b->refused[b->nrefused++] = (struct keys_refusal){ line, xstrdup(addr), xstrdup(error) };
	fprintf(pw_stderr, "postwarden: line %zu: %s: %s\n", line, *addr ? addr : "-", error);
}

static int keys_refusal_cmp(const void *a, const void *b)
{
	size_t la = ((const struct keys_refusal *)a)->line, lb = ((const struct keys_refusal *)b)->line;

	return la < lb ? -1 : la > lb;
}

/* One key of a --batch list on its way through checking and storing. */
struct keys_batch_job {
	size_t line;
	char *address;
	struct account *acct;
	uint8_t *data;
	size_t len;
	struct keys_info info;
	char *msg;
	int rc;
};

/* Jobs checked together: the checks run on every core, the stores one after another. */
struct keys_batch_chunk {
	const struct pw_config *cfg;
	int64_t now;
	struct keys_batch_job jobs[KEYS_BATCH_CHUNK];
	size_t n;
	size_t next;		/* next job to check, taken under lock */
	pthread_mutex_t lock;
};

/* Worker: check jobs until none is left (keydir_check needs no database). */
static void *keys_batch_worker(void *arg)
{
	struct keys_batch_chunk *c = arg;

	for (;;) {
		struct keys_batch_job *j;

		pthread_mutex_lock(&c->lock);
		j = c->next < c->n ? &c->jobs[c->next++] : NULL;
		pthread_mutex_unlock(&c->lock);
		if (j == NULL)
			return NULL;
		j->rc = keydir_check(c->cfg, j->acct, j->data, j->len, c->now, &j->info, &j->msg);
	}
}

/* Check every job of the chunk on all cores, then store the accepted ones in list order. */
static void keys_batch_run(struct keydir *kd, struct keys_batch *b, struct keys_batch_chunk *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus;
	pthread_t threads[8];

	c->next = 0;
	if (nthreads > c->n)
		nthreads = c->n ? c->n : 1;
	for (size_t i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, keys_batch_worker, c) != 0)
			fatal("pthread_create");
	for (size_t i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	for (size_t i = 0; i < c->n; i++) {
		struct keys_batch_job *j = &c->jobs[i];

		if (j->rc == 0)
			j->rc = keydir_store_checked(kd, j->acct, j->data, j->len, c->now, &j->info,
						     &j->msg);
		if (j->rc < 0) {
			keys_batch_refuse(b, j->line, j->address, j->msg ? j->msg : "the key was refused");
		} else {
			b->published++;
			b->copies += j->info.ncopies;
			keys_info_free(&j->info);
		}
		free(j->msg);
		free(j->data);
		free(j->address);
		account_free(j->acct);
	}
	c->n = 0;
}

/* Read one "ADDR FILE" line into the chunk (refusing what cannot even be read); no DNS yet. */
static void keys_batch_line(struct keydir *kd, struct keys_batch *b, struct keys_batch_chunk *c,
			    size_t lineno, char *line)
{
	char *addr = str_trim(line), *path = addr + strcspn(addr, " \t");
	struct keys_batch_job *j;
	struct account *acct;
	uint8_t *data;
	size_t len;
	char *msg;

	if (*addr == '\0' || *addr == '#')
		return;
	if (*path)
		*path++ = '\0';
	path = str_trim(path);
	if (*path == '\0' || strcmp(path, "-") == 0) {
		keys_batch_refuse(b, lineno, addr, "want \"ADDR FILE\" (FILE not \"-\")");
		return;
	}
	acct = account_find(kd->db, addr);
	if (acct == NULL) {
		msg = xasprintf("no account has the address %s", addr);
		keys_batch_refuse(b, lineno, addr, msg);
		free(msg);
		return;
	}
	data = keys_read_input(path, &len);
	if (data == NULL) {
		keys_batch_refuse(b, lineno, addr, "cannot read the key file");
		account_free(acct);
		return;
	}
	j = &c->jobs[c->n++];
	*j = (struct keys_batch_job){ .line = lineno, .address = xstrdup(addr), .acct = acct,
				      .data = data, .len = len };
	if (c->n == KEYS_BATCH_CHUNK)
		keys_batch_run(kd, b, c);
}

/*
 * keys publish --batch LIST: store every key first, then reconcile once, so that the
 * records of many keys share UPDATE messages (and the DNS server re-signs once per
 * message, not once per key). Exit 1 when any line was refused; the others stay published.
 */
static int keys_publish_batch(struct keydir *kd, const char *list, bool json)
{
	FILE *f = strcmp(list, "-") == 0 ? stdin : fopen(list, "r");
	struct keydir_report rep = { 0 };
	struct keys_batch b = { 0 };
	char *line = xmalloc(KEYS_BATCH_LINE + 1);
	int64_t now = (int64_t)time(NULL);
	size_t lineno = 0;
	bool toolong = false;
	struct keys_batch_chunk *chunk;

	if (f == NULL) {
		fprintf(pw_stderr, "postwarden: cannot open %s: %s\n", list, strerror(errno));
		free(line);
		return 1;
	}
	chunk = xcalloc(1, sizeof(*chunk));
	chunk->cfg = kd->cfg;
	chunk->now = now;
	pthread_mutex_init(&chunk->lock, NULL);
	while (fgets(line, KEYS_BATCH_LINE + 1, f)) {
		size_t n = strlen(line);
		bool whole = n > 0 && line[n - 1] == '\n';

		if (!toolong)
			lineno++;
		if (toolong || (!whole && !feof(f))) {
			/* Skip the rest of an overlong line; refuse it once. */
			if (!toolong)
				keys_batch_refuse(&b, lineno, "", "line too long");
			toolong = !whole;
			continue;
		}
		keys_batch_line(kd, &b, chunk, lineno, line);
	}
	keys_batch_run(kd, &b, chunk);
	pthread_mutex_destroy(&chunk->lock);
	free(chunk);
	if (ferror(f))
		keys_batch_refuse(&b, lineno + 1, "", "cannot read the list");
	if (f != stdin)
		fclose(f);
	free(line);
	/* Keys are refused when read or later when checked: report them in list order. */
	if (b.nrefused > 1)
		qsort(b.refused, b.nrefused, sizeof(*b.refused), keys_refusal_cmp);
	if (b.published)
		keydir_reconcile(kd, false, now, &rep);
	if (json) {
		json_t *refused = json_array();
		for (size_t i = 0; i < b.nrefused; i++)
			json_array_append_new(refused, json_pack("{s:I, s:s, s:s}", "line",
				(json_int_t)b.refused[i].line, "address", b.refused[i].address,
				"error", b.refused[i].error));
		keys_json_print(json_pack("{s:I, s:I, s:o, s:I, s:I, s:s?}", "published",
					  (json_int_t)b.published, "addresses",
					  (json_int_t)b.copies, "refused", refused, "done",
					  (json_int_t)rep.done, "pending", (json_int_t)rep.failed,
					  "error", rep.error));
	} else {
		printf("published %zu key(s) for %zu address(es), %zu refused; %zu name(s) "
		       "updated\n", b.published, b.copies, b.nrefused, rep.done);
		if (rep.failed)
			fprintf(pw_stderr, "postwarden: warning: %zu name(s) not updated yet, serve "
					"retries them: %s\n", rep.failed, rep.error ? rep.error : "");
	}
	for (size_t i = 0; i < b.nrefused; i++) {
		free(b.refused[i].address);
		free(b.refused[i].error);
	}
	free(b.refused);
	keydir_report_free(&rep);
	return b.nrefused ? 1 : 0;
}

static int keys_unpublish(struct keydir *kd, int argc, char **argv, bool json)
{
	const char *fpr = NULL;
	struct keydir_report rep = { 0 };
	size_t n;

	if (argc == 5 && strcmp(argv[3], "--fingerprint") == 0)
		fpr = argv[4];
	else if (argc != 3)
		return cli_usage(keys_usage);
	n = keydir_unpublish(kd, argv[2], fpr);
	if (n == 0) {
		fprintf(pw_stderr, "postwarden: no %skey is published for %s\n", fpr ? "such " : "",
			argv[2]);
		return 1;
	}
	keydir_reconcile(kd, false, (int64_t)time(NULL), &rep);
	if (json) {
		json_t *j = keys_result_json(&rep);
		json_object_set_new(j, "address", json_string(argv[2]));
		json_object_set_new(j, "removed", json_integer((json_int_t)n));
		keys_json_print(j);
	} else {
		printf("unpublished %zu key(s) for %s\n", n, argv[2]);
		keys_report_text(&rep);
	}
	keydir_report_free(&rep);
	return 0;
}

static char *keys_wkd_rel(const struct keydir_key *k)
{
	if (!*k->wkd_hash)
		return NULL;
	return xasprintf(".well-known/openpgpkey/%s/hu/%s", k->wkd_domain, k->wkd_hash);
}

static json_t *keys_key_json(const struct keydir_key *k, bool with_key)
{
	json_t *names = json_array();
	char *wkd = keys_wkd_rel(k);
	json_t *j;

	json_array_append_new(names, json_string(k->owner));
	if (*k->owner_lc)
		json_array_append_new(names, json_string(k->owner_lc));
	j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:s?, s:b, s:s?, s:I}",
		      "address", k->address, "kind", keys_kind_name(k->kind), "fingerprint",
		      k->fingerprint, "algorithm", k->algorithm, "bits", (json_int_t)k->bits,
		      "created", (json_int_t)k->created, "expires", (json_int_t)k->expires,
		      "published", (json_int_t)k->published, "type", keydir_rrtype_name(k->rrtype),
		      "dns_names", names, "wkd_path", wkd, "pending", k->pending, "error", k->error,
		      "size", (json_int_t)k->len);
	if (with_key) {
		char *text = keys_text(k->kind, k->data, k->len);
		json_object_set_new(j, "key", json_string(text));
		free(text);
	}
	free(wkd);
	return j;
}

static void keys_key_text(const struct keydir_key *k)
{
	char expires[16];

	format_date(k->expires, expires, sizeof(expires));
	printf("%s\t%s\t%s\t%s/%u\texpires=%s\t%s\n", k->address, keys_kind_name(k->kind),
	       k->fingerprint, k->algorithm, k->bits, expires, k->pending ? "pending" : "published");
}

static int keys_list(struct keydir *kd, const char *addr, bool json, bool show)
{
	size_t n;
	struct keydir_key **keys = keydir_store_list(kd->db, addr, &n);

	if (show && n == 0) {
		fprintf(pw_stderr, "postwarden: no key is published for %s\n", addr);
		keydir_key_list_free(keys, n);
		return 1;
	}
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, keys_key_json(keys[i], show));
		keys_json_print(a);
	}
	for (size_t i = 0; i < n && !json; i++) {
		keys_key_text(keys[i]);
		if (!show)
			continue;
		char *wkd = keys_wkd_rel(keys[i]);
		char *text = keys_text(keys[i]->kind, keys[i]->data, keys[i]->len);
		printf("  %s %s\n", keydir_rrtype_name(keys[i]->rrtype), keys[i]->owner);
		if (*keys[i]->owner_lc)
			printf("  %s %s\n", keydir_rrtype_name(keys[i]->rrtype), keys[i]->owner_lc);
		if (wkd)
			printf("  WKD %s\n", wkd);
		if (keys[i]->error)
			printf("  last error: %s\n", keys[i]->error);
		printf("%s\n", text ? text : "");
		free(text);
		free(wkd);
	}
	keydir_key_list_free(keys, n);
	return 0;
}

static int keys_sync(struct keydir *kd, bool json)
{
	struct keydir_report rep = { 0 };
	int rc = keydir_sync(kd, (int64_t)time(NULL), &rep);

	if (json) {
		keys_json_print(json_pack("{s:o, s:I, s:I, s:s?}", "changes", keys_changes_json(&rep),
					  "done", (json_int_t)rep.done, "pending",
					  (json_int_t)rep.failed, "error", rep.error));
	} else {
		for (size_t i = 0; i < rep.nchanges; i++)
			printf("%s\t%s\t%s\t%s\n", rep.changes[i].action, rep.changes[i].where,
			       rep.changes[i].type, rep.changes[i].name);
		printf("%zu change(s)\n", rep.nchanges);
	}
	if (rc < 0)
		fprintf(pw_stderr, "postwarden: sync incomplete: %s\n", rep.error ? rep.error : "error");
	keydir_report_free(&rep);
	return rc < 0 ? 1 : 0;
}

int cli_keys(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct keydir kd;
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n%s", keys_usage, keys_help);
		return 0;
	}
	if (argc < 2)
		return cli_usage(keys_usage);
	if (strcmp(argv[1], "search") == 0)
		return cli_keysearch(cli, argc, argv, json);
	db = cli_open_db(cli);
	if (db == NULL)
		return 1;
	kd = (struct keydir){ .cfg = &cli->cfg, .db = db };
	if (strcmp(argv[1], "publish") == 0 && argc == 4 && strcmp(argv[2], "--batch") == 0)
		rc = keys_publish_batch(&kd, argv[3], json);
	else if (strcmp(argv[1], "publish") == 0 && argc == 4)
		rc = keys_publish(&kd, argv[2], argv[3], json);
	else if (strcmp(argv[1], "unpublish") == 0)
		rc = keys_unpublish(&kd, argc, argv, json);
	else if (strcmp(argv[1], "list") == 0 && argc <= 3)
		rc = keys_list(&kd, argc == 3 ? argv[2] : NULL, json, false);
	else if (strcmp(argv[1], "show") == 0 && argc == 3)
		rc = keys_list(&kd, argv[2], json, true);
	else if (strcmp(argv[1], "sync") == 0 && argc == 2)
		rc = keys_sync(&kd, json);
	else
		rc = cli_usage(keys_usage);
	return cli_close_db(db, rc);
}
