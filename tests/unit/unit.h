/*
 * unit.h - a tiny unit test harness: CHECK() records failures, TEST_MAIN runs the tests.
 *
 *   static void test_something(void) { CHECK(1 + 1 == 2); CHECK_STREQ(a, "x"); }
 *   TEST_MAIN(test_something, test_other)
 */
#ifndef PW_UNIT_H
#define PW_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
