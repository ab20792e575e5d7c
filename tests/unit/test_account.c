/*
 * test_account.c - accounts with aliases and the guarantee setting, on a real SQLite file.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "config.h"
#include "schema.h"
#include "unit.h"

static struct db *open_temp_db(struct pw_config *cfg, char *dir)
{
	char *err = NULL;
	struct db *db;

	memset(cfg, 0, sizeof(*cfg));
	CHECK(mkdtemp(dir) != NULL);
	static char url[128];

	cfg->server.state_dir = dir;
	snprintf(url, sizeof(url), "sqlite:%s/postwarden.db", dir);
	cfg->database.url = url;
	db = schema_open(cfg, DB_OPEN_MIGRATE, &err);
	CHECK(db != NULL);
	return db;
}

static void test_accounts(void)
{
	char dir[] = "/tmp/pw-account-XXXXXX";
	struct pw_config cfg;
	struct db *db = open_temp_db(&cfg, dir);
	char *aliases[] = { "Info@Example.org", "x@example.net" };
	char *err = NULL;
	struct account *a;

	CHECK(account_add(db, "anna@example.org", aliases, 2, false, &err) == 0);
	/* An address belongs to one account only, whatever its case. */
	CHECK(account_add(db, "bob@example.org", (char *[]){ "info@example.org" }, 1, false, &err) < 0);
	CHECK(err != NULL && strstr(err, "info@example.org already belongs") != NULL);
	free(err);
	err = NULL;
	CHECK(account_find(db, "bob@example.org") == NULL);	/* rolled back */
	CHECK(account_add(db, "not an address", NULL, 0, false, &err) < 0);
	free(err);
	err = NULL;

	a = account_find(db, "INFO@example.org");
	CHECK(a != NULL && strcmp(a->primary, "anna@example.org") == 0 && a->naliases == 2);
	CHECK(a != NULL && !account_guarantee_active(a, 1000));
	account_free(a);

	CHECK(account_set_guarantee(db, "x@example.net", true, 0, &err) == 0);
	a = account_find(db, "anna@example.org");
	CHECK(a != NULL && account_guarantee_active(a, 1000));
	account_free(a);

	/* Off for a while: inactive until then, active again afterwards without any action. */
	CHECK(account_set_guarantee(db, "anna@example.org", false, 5000, &err) == 0);
	a = account_find(db, "anna@example.org");
	CHECK(a != NULL && !account_guarantee_active(a, 4999));
	CHECK(a != NULL && account_guarantee_active(a, 5000));
	account_free(a);

	CHECK(account_del(db, "x@example.net", &err) == 0);
	CHECK(account_find(db, "info@example.org") == NULL);
	CHECK(account_del(db, "x@example.net", &err) < 0);
	free(err);
	db_close(db);
	char *cmd = NULL;
	if (asprintf(&cmd, "rm -rf %s", dir) > 0 && system(cmd) != 0)
		CHECK(0);
	free(cmd);
}

TEST_MAIN(test_accounts)
