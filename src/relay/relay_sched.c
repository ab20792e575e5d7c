/*
 * relay_sched.c - finds due recipients and starts deliveries (being written).
 */
#include "relay.h"

#include <stdlib.h>

#include "xmalloc.h"

struct sched {
	struct relay *relay;
};

struct sched *sched_start(struct relay *relay)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->relay = relay;
	return s;
}

void sched_stop(struct sched *s)
{
	free(s);
}

void sched_kick(struct sched *s)
{
	(void)s;
}
