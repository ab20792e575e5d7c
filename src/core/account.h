/*
 * account.h - accounts: one primary address, any number of aliases, the guarantee setting.
 */
#ifndef PW_ACCOUNT_H
#define PW_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct account {
	int64_t id;
	char *primary;
	char **aliases;
	size_t naliases;
	bool guarantee;			/* the user's setting */
	int64_t guarantee_off_until;	/* > now: switched off for a while ('off --for') */
	int64_t created;
};

/* Create an account. Returns 0, or -1 with *err (e.g. an address already belongs to someone). */
int account_add(struct db *db, const char *primary, char *const *aliases, size_t naliases,
		bool guarantee, char **err);
/* Delete the account that owns addr (primary or alias). -1 + *err when there is none. */
int account_del(struct db *db, const char *addr, char **err);
/* The account owning addr (primary or alias), or NULL: none, or a database error (db_error). */
struct account *account_find(struct db *db, const char *addr);
/* Every account, ordered by primary address. */
struct account **account_list(struct db *db, size_t *n);
/*
 * Set the guarantee of the account owning addr. off_until > 0 (only with on == false)
 * switches it off until then, after which it is on again by itself.
 */
int account_set_guarantee(struct db *db, const char *addr, bool on, int64_t off_until, char **err);
/* Is the guarantee in force at time now? */
bool account_guarantee_active(const struct account *a, int64_t now);
void account_free(struct account *a);
void account_list_free(struct account **list, size_t n);

#endif
