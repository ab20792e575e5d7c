/*
 * node.c - the heartbeat of this node and the renewal of its leases; see node.h.
 *
 * Both run on the loop with serve's connection, like the scheduler's poll: a statement to
 * a database that is away fails at once (or after libpq's connect timeout, at most once a
 * second), and a lease whose renewals fail runs out by the clock (lease.h), so nothing
 * here needs the database to answer in time.
 */
#include "node.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

struct node {
	struct event_base *base;	/* borrowed */
	struct db *db;			/* borrowed */
	const struct pw_config *cfg;	/* borrowed */
	struct event *tick_ev;
	bool registered;		/* the row was written with this process's start */
	bool db_down;			/* the last heartbeat failed (logged once) */
	struct lease **leases;		/* one per name asked for (a CT log list can be long) */
	bool *held;			/* as last logged */
	size_t nleases;
};

/* The database's clock, as for leases, so that every node's heartbeat compares alike. */
#define NODE_BEAT(now) \
	"INSERT INTO nodes(name, started, heartbeat, pid, version) " \
	"VALUES (?1, " now ", " now ", ?2, ?3) ON CONFLICT (name) DO UPDATE SET " \
	"heartbeat = excluded.heartbeat, pid = excluded.pid, version = excluded.version, " \
	"started = CASE WHEN ?4 = 1 THEN excluded.started ELSE nodes.started END"

static const char node_beat_sqlite[] = NODE_BEAT(DB_NOW_SQLITE);
static const char node_beat_pg[] = NODE_BEAT(DB_NOW_PG);

static void node_heartbeat(struct node *n)
{
	struct db_stmt *st = db_prepare_cached(n->db, DB_SQL(n->db, node_beat_sqlite,
							     node_beat_pg));
	int rc;

	db_clear_error(n->db);
	db_bind_text(st, 1, n->cfg->server.node);
	db_bind_int(st, 2, (int64_t)getpid());
	db_bind_text(st, 3, PW_VERSION);
	db_bind_int(st, 4, n->registered ? 0 : 1);
	rc = db_step_done(n->db, st);
	db_release(n->db, st);
	if (rc == DB_DONE) {
		if (n->db_down)
			log_info("event=node_heartbeat node=%s state=written", n->cfg->server.node);
		n->registered = true;
		n->db_down = false;
	} else if (!n->db_down) {
		log_warn("event=node_heartbeat node=%s state=failed error=\"%s\"",
			 n->cfg->server.node, db_errmsg(n->db));
		n->db_down = true;
	}
}

/* Renew lease i and log when this node starts or stops holding it. */
static void node_renew(struct node *n, size_t i)
{
	struct lease *l = n->leases[i];
	bool held;

	db_clear_error(n->db);
	lease_renew(l, n->db);
	held = lease_valid(l);
	if (held && !n->held[i])
		log_info("event=lease_acquired lease=%s node=%s", lease_name(l),
			 n->cfg->server.node);
	else if (!held && n->held[i])
		log_warn("event=lease_lost lease=%s node=%s holder=%s error=\"%s\"",
			 lease_name(l), n->cfg->server.node,
			 *lease_seen_holder(l) ? lease_seen_holder(l) : "unknown",
			 db_error(n->db) != DB_OK ? db_errmsg(n->db) : "taken over");
	n->held[i] = held;
}

static void node_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct node *n = arg;

	node_heartbeat(n);
	for (size_t i = 0; i < n->nleases; i++)
		node_renew(n, i);
}

struct node *node_start(struct event_base *base, struct db *db, const struct pw_config *cfg)
{
	struct node *n = xcalloc(1, sizeof(*n));
	struct timeval tv = { NODE_TICK_SECONDS, 0 };

	n->base = base;
	n->db = db;
	n->cfg = cfg;
	n->tick_ev = event_new(base, -1, EV_PERSIST, node_tick_cb, n);
	if (n->tick_ev == NULL)
		fatalx("cannot create the node's timer");
	event_add(n->tick_ev, &tv);
	node_heartbeat(n);
	log_info("event=node_start node=%s pid=%ld version=%s db=%s", cfg->server.node,
		 (long)getpid(), PW_VERSION, db_url_display(db));
	return n;
}

const struct lease *node_lease(struct node *n, const char *name)
{
	struct lease *l;

	n->leases = xreallocarray(n->leases, n->nleases + 1, sizeof(*n->leases));
	n->held = xreallocarray(n->held, n->nleases + 1, sizeof(*n->held));
	l = lease_new(name, n->cfg->server.node, NODE_LEASE_SECONDS);
	n->leases[n->nleases] = l;
	n->held[n->nleases] = false;
	node_renew(n, n->nleases++);
	return l;
}

void node_stop(struct node *n)
{
	if (n == NULL)
		return;
	event_free(n->tick_ev);
	for (size_t i = 0; i < n->nleases; i++) {
		if (lease_valid(n->leases[i]))
			log_info("event=lease_released lease=%s node=%s",
				 lease_name(n->leases[i]), n->cfg->server.node);
		lease_release(n->leases[i], n->db);
		lease_free(n->leases[i]);
	}
	free(n->leases);
	free(n->held);
	free(n);
}
