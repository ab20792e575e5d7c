/*
 * relay_requiretls.c - REQUIRETLS (RFC 8689) on the way out: which MX hosts may receive a
 * message that asked for it.
 */
#include "relay_mta_priv.h"

/*
 * STUB, to be replaced by the MTA-STS implementation (relay_mta_sts.c): until then no host
 * counts as MTA-STS enforced, so REQUIRETLS needs DANE.
 */
bool mta_sts_enforced(const struct mta *m)
{
	(void)m;
	return false;
}
