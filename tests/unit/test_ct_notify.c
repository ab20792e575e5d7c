/*
 * test_ct_notify.c - the CT monitor's alert delivery: the backlog rule (a table), the
 * document and a hook's certspotter variables for a stored finding, per-channel delivery
 * rows claimed once (a second claimer is refused until the first gives up), health
 * episodes (one alert until closed), and hook commands on a real event loop (exit status,
 * the document on standard input).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "ctmon/ct_notify.h"
#include "ctmon/ct_store.h"
#include "schema.h"
#include "unit.h"

static void test_backlog_rule(void)
{
	struct ct_backlog b = { .last = -1 };
	/* grows five rounds in a row above the minimum: open once; down to it: close */
	static const struct { int64_t backlog; enum ct_backlog_action want; } steps[] = {
		{ 2000, CT_BACKLOG_NONE }, { 2100, CT_BACKLOG_NONE }, { 2200, CT_BACKLOG_NONE },
		{ 2300, CT_BACKLOG_NONE }, { 2400, CT_BACKLOG_NONE }, { 2500, CT_BACKLOG_OPEN },
		{ 2600, CT_BACKLOG_NONE }, { 1500, CT_BACKLOG_NONE }, { 900, CT_BACKLOG_CLOSE },
		{ 800, CT_BACKLOG_NONE },
	};
	struct ct_backlog small = { .last = -1 };

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		CHECK(ct_backlog_judge(&b, steps[i].backlog) == steps[i].want);
	/* growing, but below the minimum: never an alert */
	for (int64_t i = 1; i < 20; i++)
		CHECK(ct_backlog_judge(&small, i * 10) == CT_BACKLOG_NONE);
	/* a pause in the growth starts the count again */
	struct ct_backlog paused = { .last = -1 };
	int64_t seq[] = { 5000, 6000, 7000, 7000, 8000, 9000, 10000, 11000 };

	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
		CHECK(ct_backlog_judge(&paused, seq[i]) == CT_BACKLOG_NONE);
	CHECK(ct_backlog_judge(&paused, 12000) == CT_BACKLOG_OPEN);
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);

	for (char **p = env; *p; p++)
		if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

static int64_t store_finding(struct db *db)
{
	struct ct_log_pos to = { .log_id = "bG9n", .tree_size = 10, .has_root = true,
		.next_index = 10 };
	struct ct_finding f = { .names = "a.example.org, b.example.org", .issuer = "CN=Test CA",
		.serial = "0a", .spki_sha256 = "ab", .not_before = 1700000000,
		.not_after = 1710000000, .verdict = "unknown_key", .reason = "not expected",
		.index = 7 };

	memset(f.identity, 0x11, sizeof(f.identity));
	CHECK(ct_store_log_register(db, "bG9n", "https://log.example/", "rfc6962") == DB_OK);
	CHECK(ct_store_advance(db, &to, 0, &f, 1, NULL) == DB_OK);
	return f.id;
}

static void test_document_and_env(struct db *db, int64_t id)
{
	json_t *doc = ct_notify_document(db, "finding", id);
	char **env;

	CHECK(doc != NULL);
	CHECK_STREQ(json_string_value(json_object_get(doc, "kind")), "finding");
	CHECK(json_array_size(json_object_get(doc, "names")) == 2);
	CHECK_STREQ(json_string_value(json_object_get(doc, "tbs_sha256")),
		    "1111111111111111111111111111111111111111111111111111111111111111");
	CHECK_STREQ(json_string_value(json_object_get(doc, "not_before_rfc3339")),
		    "2023-11-14T22:13:20Z");
	env = ct_notify_env(doc);
	CHECK_STREQ(env_get(env, "EVENT"), "discovered_cert");
	CHECK_STREQ(env_get(env, "DNS_NAMES"), "a.example.org,b.example.org");
	CHECK_STREQ(env_get(env, "PUBKEY_SHA256"), "ab");
	CHECK_STREQ(env_get(env, "LOG_URI"), "https://log.example/");
	CHECK_STREQ(env_get(env, "ENTRY_INDEX"), "7");
	CHECK_STREQ(env_get(env, "NOT_BEFORE"), "2023-11-14 22:13:20 +0000 UTC");
	CHECK_STREQ(env_get(env, "NOT_BEFORE_UNIXTIME"), "1700000000");
	CHECK_STREQ(env_get(env, "NOT_AFTER_RFC3339"), "2024-03-09T16:00:00Z");
	CHECK_STREQ(env_get(env, "SERIAL"), "0a");
	CHECK(env_get(env, "ALERT_KIND") == NULL);
	ct_notify_env_free(env);
	json_decref(doc);
	CHECK(ct_notify_document(db, "finding", id + 100) == NULL);
}

static void test_deliveries(struct db *db, int64_t id)
{
	struct ct_due due[4];
	size_t n;

	CHECK(ct_store_delivery_enqueue(db, "webhook", 100) == DB_OK);
	CHECK(ct_store_delivery_enqueue(db, "webhook", 101) == DB_OK);	/* kept, not doubled */
	n = ct_store_delivery_due(db, "webhook", 100, due, 4);
	CHECK(n == 1 && due[0].id == id && strcmp(due[0].item, "finding") == 0);
	CHECK(ct_store_delivery_claim(db, &due[0], "webhook", "node-a", 100, 400));
	CHECK(!ct_store_delivery_claim(db, &due[0], "webhook", "node-b", 100, 400));
	CHECK(ct_store_delivery_due(db, "webhook", 101, due + 1, 3) == 0);
	/* failed: not due before its next attempt, then anyone's */
	ct_store_delivery_failed(db, &due[0], "webhook", 110, "HTTP 500");
	CHECK(ct_store_delivery_due(db, "webhook", 109, due + 1, 3) == 0);
	CHECK(ct_store_delivery_due(db, "webhook", 110, due + 1, 3) == 1 && due[1].attempts == 1);
	CHECK(ct_store_delivery_claim(db, &due[1], "webhook", "node-b", 110, 400));
	ct_store_delivery_done(db, &due[1], "webhook", 111);
	CHECK(ct_store_delivery_due(db, "webhook", 1000, due, 4) == 0);
	CHECK(db_query_int(db, "SELECT attempts FROM ct_deliveries", 0) == 2);
	CHECK(db_query_int(db, "SELECT alerted FROM ct_findings", 0) == 111);
	/* another channel is its own row; an acked finding gets none on a new channel */
	CHECK(ct_store_delivery_enqueue(db, "hook", 120) == DB_OK);
	CHECK(ct_store_delivery_due(db, "hook", 120, due, 4) == 1);
	CHECK(ct_store_ack(db, id, 130));
	CHECK(ct_store_delivery_enqueue(db, "mail", 130) == DB_OK);
	CHECK(ct_store_delivery_due(db, "mail", 130, due, 4) == 0);
}

static void test_health_episodes(struct db *db)
{
	CHECK(ct_store_health_open(db, CT_HEALTH_LOG_STALE, "bG9n", "stale for 70 s", "{}"));
	CHECK(!ct_store_health_open(db, CT_HEALTH_LOG_STALE, "bG9n", "stale for 80 s", "{}"));
	CHECK(ct_store_health_open(db, CT_HEALTH_LIST_STALE, NULL, "list", "{}"));
	ct_store_health_close(db, CT_HEALTH_LOG_STALE, "bG9n");
	CHECK(ct_store_health_open(db, CT_HEALTH_LOG_STALE, "bG9n", "stale again", "{}"));
	CHECK(db_query_int(db, "SELECT count(*) FROM ct_alerts WHERE kind = 'log_stale'", 0) == 2);
	json_t *doc = ct_notify_document(db, "alert", db_query_int(db,
		"SELECT max(id) FROM ct_alerts WHERE kind = 'log_stale'", 0));
	char **env;

	CHECK(doc != NULL);
	CHECK_STREQ(json_string_value(json_object_get(doc, "kind")), "alert");
	CHECK_STREQ(json_string_value(json_object_get(doc, "alert")), "log_stale");
	CHECK_STREQ(json_string_value(json_object_get(doc, "class")), "health");
	CHECK_STREQ(json_string_value(json_object_get(doc, "log_url")), "https://log.example/");
	env = ct_notify_env(doc);
	CHECK_STREQ(env_get(env, "EVENT"), "error");
	CHECK_STREQ(env_get(env, "ALERT_KIND"), "log_stale");
	ct_notify_env_free(env);
	json_decref(doc);
}

struct hook_result {
	int calls;
	bool ok;
	char error[128];
};

static void hook_done(bool ok, const char *error, void *arg)
{
	struct hook_result *r = arg;

	r->calls++;
	r->ok = ok;
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
}

/* Run command with the document text; the loop runs until it is reaped. */
static struct hook_result run_hook(struct event_base *base, struct ct_hooks *h,
				   const char *command, const char *text)
{
	struct hook_result r = { 0 };
	char *env[] = { "EVENT=discovered_cert", NULL };

	CHECK(ct_hooks_run(h, command, env, text, hook_done, &r));
	while (r.calls == 0)
		event_base_loop(base, EVLOOP_ONCE);
	return r;
}

static void test_hooks(void)
{
	char dir[] = "/tmp/pw-cthook-XXXXXX", cmd[256], path[200], buf[300000];
	struct event_base *base = event_base_new();
	struct ct_hooks *h = ct_hooks_new(base);
	char *big = malloc(200001);
	struct hook_result r;
	FILE *f;
	size_t n;

	CHECK(mkdtemp(dir) != NULL);
	r = run_hook(base, h, "exit 0", "{}");
	CHECK(r.calls == 1 && r.ok);
	r = run_hook(base, h, "exit 3", "{}");
	CHECK(r.calls == 1 && !r.ok && strstr(r.error, "status 3") != NULL);
	/* a document larger than a pipe's buffer arrives whole; the variables are set */
	memset(big, 'x', 200000);
	big[200000] = '\0';
	snprintf(cmd, sizeof(cmd), "cat > %s/in && test \"$EVENT\" = discovered_cert", dir);
	r = run_hook(base, h, cmd, big);
	CHECK(r.ok);
	snprintf(path, sizeof(path), "%s/in", dir);
	CHECK((f = fopen(path, "rb")) != NULL);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	CHECK(n == 200000 && memcmp(buf, big, n) == 0);
	/* a command that does not read its input still ends well */
	r = run_hook(base, h, "true", big);
	CHECK(r.ok);
	CHECK(ct_hooks_running(h) == 0);
	free(big);
	ct_hooks_free(h);
	event_base_free(base);
	unit_remove_dir(dir);
}

static void test_store(void)
{
	char dir[] = "/tmp/pw-ctnotify-XXXXXX";
	struct db *db = unit_temp_db(dir);
	int64_t id = store_finding(db);

	test_document_and_env(db, id);
	test_deliveries(db, id);
	test_health_episodes(db);
	db_close(db);
	unit_remove_dir(dir);
}

TEST_MAIN(test_backlog_rule, test_store, test_hooks)
