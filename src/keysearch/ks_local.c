/*
 * ks_local.c - the local source: keys published in this provider's own directory (the
 * keydir store). No network; the store is an indexed SQLite lookup, quick enough for the
 * loop. Each stored copy is checked again with keys_accept, so that a key that expired or
 * was revoked since publication is not handed out.
 */
#include "ks.h"

#include <stdlib.h>
#include <time.h>

#include "account.h"
#include "keydir/keydir.h"
#include "strutil.h"
#include "xmalloc.h"

static bool ks_local_wants(enum ks_type type, enum keys_kind kind)
{
	return type == KS_TYPE_ANY || (type == KS_TYPE_OPENPGP) == (kind == KEYS_OPENPGP);
}

/* Look the address up in the store and finish the source at once. */
void ks_local_start(struct ks_src *src)
{
	struct ks_outcome *o = ks_src_outcome(src);
	struct db *db = ks_src_db(src);
	char *addr = addr_canonical(ks_src_address(src));
	struct keydir_key **keys;
	struct account *acct;
	size_t n, found = 0;
	int64_t now = (int64_t)time(NULL);

	if (db == NULL) {
		ks_outcome_set(o, KS_ERROR, "the directory database is not available");
		free(addr);
		ks_src_done(src);
		return;
	}
	keys = keydir_store_list(db, addr, &n);
	for (size_t i = 0; i < n; i++)
		if (ks_local_wants(ks_src_type(src), keys[i]->kind) &&
		    ks_body_accept(keys[i]->data, keys[i]->len, ks_src_address(src), now,
				   KS_TRUST_DIRECTORY, "directory", o))
			found++;
	keydir_key_list_free(keys, n);
	if (found) {
		ks_outcome_set(o, KS_FOUND, "%zu key(s) published here", found);
	} else if (o->refused) {
		ks_outcome_set(o, KS_NONE, "published key(s) no longer usable: %s", o->refusal);
	} else {
		acct = account_find(db, addr);
		ks_outcome_set(o, KS_NONE, acct ? "no key published for this account"
					       : "not an address of this provider");
		account_free(acct);
	}
	free(addr);
	ks_src_done(src);
}
