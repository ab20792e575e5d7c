/*
 * account.c - accounts and their addresses in the database; see account.h.
 */
#include "account.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strutil.h"
#include "xmalloc.h"

/* Insert one address row: DB_DONE, DB_CONSTRAINT (it belongs to an account already)
 * or a database error. */
static int account_add_addr(struct db *db, int64_t id, const char *addr, bool primary)
{
	struct db_stmt *st = db_prepare(db,
		"INSERT INTO addresses (addr, account_id, is_primary) VALUES (?, ?, ?)");
	char *canon = addr_canonical(addr);
	int rc;

	db_bind_text(st, 1, canon);
	db_bind_int(st, 2, id);
	db_bind_int(st, 3, primary);
	rc = db_step_done(db, st);
	db_finalize(st);
	free(canon);
	return rc;
}

/* The message for a failed database operation (caller frees). */
static char *account_db_error(struct db *db)
{
	return xasprintf("the database could not be changed: %s", db_errmsg(db));
}

int account_add(struct db *db, const char *primary, char *const *aliases, size_t naliases,
		bool guarantee, char **err)
{
	const char *bad = NULL;
	struct db_stmt *st;
	int64_t id = 0;
	int rc;

	if (!addr_valid(primary))
		bad = primary;
	for (size_t i = 0; bad == NULL && i < naliases; i++)
		if (!addr_valid(aliases[i]))
			bad = aliases[i];
	if (bad) {
		*err = xasprintf("\"%s\" is not a valid e-mail address", bad);
		return -1;
	}
	if (db_begin(db) != DB_OK) {
		*err = account_db_error(db);
		return -1;
	}
	st = db_prepare(db, "INSERT INTO accounts (primary_addr, guarantee, created) VALUES (?, ?, ?)"
			" RETURNING id");
	char *canon = addr_canonical(primary);
	db_bind_text(st, 1, canon);
	db_bind_int(st, 2, guarantee);
	db_bind_int(st, 3, (int64_t)time(NULL));
	free(canon);
	if ((rc = db_step(db, st)) == DB_ROW) {
		id = db_col_int(st, 0);
		rc = DB_DONE;
	}
	db_finalize(st);
	if (rc != DB_DONE) {
		db_rollback(db);
		*err = rc == DB_CONSTRAINT ? xasprintf("%s already has an account", primary)
					       : account_db_error(db);
		return -1;
	}
	rc = account_add_addr(db, id, primary, true);
	bad = rc == DB_DONE ? NULL : primary;
	for (size_t i = 0; bad == NULL && i < naliases; i++)
		if ((rc = account_add_addr(db, id, aliases[i], false)) != DB_DONE)
			bad = aliases[i];
	if (bad) {
		db_rollback(db);
		*err = rc == DB_CONSTRAINT ? xasprintf("%s already belongs to an account", bad)
					       : account_db_error(db);
		return -1;
	}
	if (db_commit(db) != DB_OK) {
		*err = account_db_error(db);
		return -1;
	}
	return 0;
}

/* The id of the account owning addr, or -1 (db_error tells a failed read from none). */
static int64_t account_id_of(struct db *db, const char *addr)
{
	struct db_stmt *st = db_prepare(db, "SELECT account_id FROM addresses WHERE addr = ?");
	int64_t id = -1;

	db_bind_text(st, 1, addr);
	if (db_step_row(db, st))
		id = db_col_int(st, 0);
	db_finalize(st);
	return id;
}

int account_del(struct db *db, const char *addr, char **err)
{
	int64_t id = account_id_of(db, addr);
	struct db_stmt *st;
	int rc;

	if (id < 0) {
		*err = db_error(db) ? account_db_error(db)
				    : xasprintf("no account has the address %s", addr);
		return -1;
	}
	st = db_prepare(db, "DELETE FROM accounts WHERE id = ?");
	db_bind_int(st, 1, id);
	rc = db_step_done(db, st);
	db_finalize(st);
	if (rc != DB_DONE) {
		*err = account_db_error(db);
		return -1;
	}
	return 0;
}

/* Load the account with this id, with its aliases. */
static struct account *account_load(struct db *db, int64_t id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT primary_addr, guarantee, guarantee_off_until, created FROM accounts WHERE id = ?");
	struct account *a = NULL;

	db_bind_int(st, 1, id);
	if (db_step_row(db, st)) {
		a = xcalloc(1, sizeof(*a));
		a->id = id;
		a->primary = xstrdup(db_col_text(st, 0));
		a->guarantee = (int)db_col_int(st, 1) != 0;
		a->guarantee_off_until = db_col_int(st, 2);
		a->created = db_col_int(st, 3);
	}
	db_finalize(st);
	if (a == NULL)
		return NULL;
	st = db_prepare(db, "SELECT addr FROM addresses WHERE account_id = ? AND is_primary = 0 "
			    "ORDER BY addr");
	db_bind_int(st, 1, id);
	while (db_step_row(db, st)) {
		a->aliases = xreallocarray(a->aliases, a->naliases + 1, sizeof(char *));
		a->aliases[a->naliases++] = xstrdup(db_col_text(st, 0));
	}
	db_finalize(st);
	return a;
}

struct account *account_find(struct db *db, const char *addr)
{
	int64_t id = account_id_of(db, addr);

	return id < 0 ? NULL : account_load(db, id);
}

struct account **account_list(struct db *db, size_t *n)
{
	struct db_stmt *st = db_prepare(db, "SELECT id FROM accounts ORDER BY primary_addr");
	struct account **list = NULL;

	*n = 0;
	while (db_step_row(db, st)) {
		struct account *a = account_load(db, db_col_int(st, 0));
		if (a == NULL)
			continue;
		list = xreallocarray(list, *n + 1, sizeof(*list));
		list[(*n)++] = a;
	}
	db_finalize(st);
	return list;
}

int account_set_guarantee(struct db *db, const char *addr, bool on, int64_t off_until, char **err)
{
	int64_t id = account_id_of(db, addr);
	struct db_stmt *st;
	int rc;

	if (id < 0) {
		*err = db_error(db) ? account_db_error(db)
				    : xasprintf("no account has the address %s", addr);
		return -1;
	}
	/* "off for a while" keeps the setting on and records when the pause ends. */
	st = db_prepare(db, "UPDATE accounts SET guarantee = ?, guarantee_off_until = ? WHERE id = ?");
	db_bind_int(st, 1, on || off_until > 0);
	db_bind_int(st, 2, on ? 0 : off_until);
	db_bind_int(st, 3, id);
	rc = db_step_done(db, st);
	db_finalize(st);
	if (rc != DB_DONE) {
		*err = account_db_error(db);
		return -1;
	}
	return 0;
}

bool account_guarantee_active(const struct account *a, int64_t now)
{
	return a->guarantee && a->guarantee_off_until <= now;
}

void account_free(struct account *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->naliases; i++)
		free(a->aliases[i]);
	free(a->aliases);
	free(a->primary);
	free(a);
}

void account_list_free(struct account **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		account_free(list[i]);
	free(list);
}
