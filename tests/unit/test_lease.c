/*
 * test_lease.c - leases on SQLite: the first holder takes a free lease and renews it, a
 * second holder is refused while it runs and takes it once it has expired (by the
 * database's clock), the old holder then finds it lost; release frees it at once;
 * lease_valid_for follows the last good renewal by the monotonic clock; a node holds any
 * number of leases.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "lease.h"
#include "node.h"
#include "log.h"
#include "schema.h"
#include "strutil.h"
#include "xmalloc.h"
#include "unit.h"

static char tmpdir[] = "/tmp/pw-lease-XXXXXX";

static struct db *open_db(void)
{
	char *url = xasprintf("sqlite:%s/lease.db", tmpdir), *err = NULL;
	struct pw_config cfg = { 0 };
	struct db *db;

	cfg.database.url = url;
	cfg.server.state_dir = tmpdir;
	db = schema_open(&cfg, DB_OPEN_MIGRATE, &err);
	CHECK(db != NULL);
	free(err);
	free(url);
	return db;
}

static void expire_now(struct db *db, const char *name)
{
	struct db_stmt *st = db_prepare(db, "UPDATE leases SET expires = expires - 1000 "
				       "WHERE name = ?");

	db_bind_text(st, 1, name);
	CHECK(db_step_done(db, st) == DB_DONE);
	db_finalize(st);
}

static void test_take_renew_refuse_takeover(void)
{
	struct db *db = open_db();
	struct lease *a = lease_new("keydir", "node-a", 20);
	struct lease *b = lease_new("keydir", "node-b", 20);

	CHECK(!lease_valid(a));
	CHECK(lease_renew(a, db));
	CHECK(lease_valid(a));
	CHECK(lease_valid_for(a, 10000));
	CHECK(!lease_valid_for(a, 18000));	/* 20 s less the margin */
	CHECK(lease_renew(a, db));		/* renewal by the holder */
	CHECK(!lease_renew(b, db));		/* running: refused */
	CHECK(!lease_valid(b));
	CHECK_STREQ(lease_seen_holder(b), "node-a");
	CHECK(db_query_int(db, "SELECT count(*) FROM leases", -1) == 1);
	expire_now(db, "keydir");
	CHECK(lease_renew(b, db));		/* expired: taken over */
	CHECK(lease_valid(b));
	CHECK(!lease_renew(a, db));		/* the old holder learns it lost it */
	CHECK(!lease_valid(a));
	CHECK_STREQ(lease_seen_holder(a), "node-b");
	lease_release(b, db);
	CHECK(!lease_valid(b));
	CHECK(db_query_int(db, "SELECT count(*) FROM leases", -1) == 0);
	CHECK(lease_renew(a, db));		/* released: free at once */
	lease_release(b, db);			/* not held: leaves a's row alone */
	CHECK(db_query_int(db, "SELECT count(*) FROM leases WHERE holder = 'node-a'", -1) == 1);
	CHECK(lease_renew_interval(a) == 4);
	lease_free(a);
	lease_free(b);
	db_close(db);
}

static void test_other_names_are_independent(void)
{
	struct db *db = open_db();
	struct lease *a = lease_new("ct-log-1", "node-a", 30);
	struct lease *b = lease_new("ct-log-2", "node-b", 30);

	CHECK(lease_renew(a, db));
	CHECK(lease_renew(b, db));
	CHECK(lease_valid(a) && lease_valid(b));
	lease_release(a, db);
	lease_release(b, db);
	lease_free(a);
	lease_free(b);
	db_close(db);
}

/* A node holds as many leases as it is asked for (a public CT log list has dozens of logs). */
static void test_node_holds_many_leases(void)
{
	struct db *db = open_db();
	struct event_base *base = event_base_new();
	struct pw_config cfg = { 0 };
	const struct lease *l[40];
	struct node *n;

	cfg.server.node = "node-a";
	n = node_start(base, db, &cfg);
	for (size_t i = 0; i < 40; i++) {
		char *name = xasprintf("ct:log-%zu", i);

		l[i] = node_lease(n, name);
		free(name);
	}
	for (size_t i = 0; i < 40; i++)
		CHECK(lease_valid(l[i]));
	node_stop(n);
	event_base_free(base);
	db_close(db);
}

static void test_setup(void)
{
	log_init("test", LOG_LEVEL_ERROR, stderr);
	CHECK(mkdtemp(tmpdir) != NULL);
}

static void test_cleanup(void)
{
	char *cmd = xasprintf("rm -rf %s", tmpdir);

	CHECK(system(cmd) == 0);
	free(cmd);
}

TEST_MAIN(test_setup, test_take_renew_refuse_takeover, test_other_names_are_independent,
	  test_node_holds_many_leases, test_cleanup)
