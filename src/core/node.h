/*
 * node.h - this serve process as one node of the installation: its row in table nodes
 * (started, heartbeat, pid, version; read by `postwarden status`) and the leases it keeps
 * renewing, both on serve's event loop every NODE_TICK_SECONDS.
 */
#ifndef PW_NODE_H
#define PW_NODE_H

#include <event2/event.h>

#include "config.h"
#include "db.h"
#include "lease.h"

#define NODE_TICK_SECONDS 4	/* heartbeat and lease renewal */
#define NODE_LEASE_SECONDS 20	/* a dead holder's lease is taken over within 25 s */

#ifndef PW_VERSION
#define PW_VERSION "0.9-dev"
#endif

struct node;

/* Write the heartbeat now and every tick on db (borrowed: serve's loop connection). */
struct node *node_start(struct event_base *base, struct db *db, const struct pw_config *cfg);
/*
 * A lease this node tries to hold from now on (taken at once if free); borrowed by the
 * caller until node_stop, which releases it.
 */
const struct lease *node_lease(struct node *n, const char *name);
/* Release every lease (another node takes over at once) and stop. */
void node_stop(struct node *n);

#endif
