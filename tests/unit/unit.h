/*
 * unit.h - a tiny unit test harness: CHECK() records failures, TEST_MAIN runs the tests;
 * unit_temp_db() gives a test a migrated SQLite database in a directory of its own.
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_STREQ(a, "x"); }
 *   TEST_MAIN(test_something, test_other)
 */
#ifndef PW_UNIT_H
#define PW_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

static int unit_failures;
static int unit_checks;

#define CHECK(cond)                                                              \
	do {                                                                     \
		unit_checks++;                                                   \
		if (!(cond)) {                                                   \
			unit_failures++;                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
		}                                                                \
	} while (0)

#define CHECK_STREQ(a, b)                                                        \
	do {                                                                     \
		const char *unit_a_ = (a), *unit_b_ = (b);                       \
		unit_checks++;                                                   \
		if (unit_a_ == NULL || unit_b_ == NULL ||                        \
		    strcmp(unit_a_, unit_b_) != 0) {                             \
			unit_failures++;                                         \
			fprintf(stderr, "%s:%d: CHECK_STREQ failed: %s = \"%s\", " \
				"expected \"%s\"\n", __FILE__, __LINE__, #a,     \
				unit_a_ ? unit_a_ : "(null)",                    \
				unit_b_ ? unit_b_ : "(null)");                   \
		}                                                                \
	} while (0)

/*
 * A fresh database at the current schema in a new directory made from dir, a mkdtemp
 * template ("/tmp/pw-x-XXXXXX", changed in place); unit_remove_dir(dir) removes it after
 * db_close. One at a time: the URL is kept in a static buffer.
 */
static inline struct db *unit_temp_db(char *dir)
{
	static char url[128];
	struct pw_config cfg;
	char *err = NULL;
	struct db *db;

	memset(&cfg, 0, sizeof(cfg));
	CHECK(mkdtemp(dir) != NULL);
	cfg.server.state_dir = dir;
	snprintf(url, sizeof(url), "sqlite:%s/postwarden.db", dir);
	cfg.database.url = url;
	db = schema_open(&cfg, DB_OPEN_MIGRATE, &err);
	CHECK(db != NULL);
	return db;
}

static inline void unit_remove_dir(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

typedef void (*unit_fn)(void);

static inline int unit_run(const char *file, const unit_fn *tests, const char *names, size_t n)
{
	(void)names;
	for (size_t i = 0; i < n; i++)
		tests[i]();
	printf("%s: %d checks, %d failed\n", file, unit_checks, unit_failures);
	return unit_failures ? 1 : 0;
}

#define TEST_MAIN(...)                                                           \
	int main(void)                                                           \
	{                                                                        \
		static const unit_fn tests[] = { __VA_ARGS__ };                  \
		return unit_run(__FILE__, tests, #__VA_ARGS__,                   \
				sizeof(tests) / sizeof(tests[0]));               \
	}

#endif
