/*
 * test_relay_storage.c - when the relay answers 452 4.3.1: the storage condition's start,
 * its end once space is back and writes stopped failing, and the hold time that grows when
 * the condition keeps coming back.
 */
#include "relay/relay_storage.h"
#include "unit.h"

#define PLENTY	(100LL * 1024 * 1024)

static void test_low_space_starts_and_ends_once(void)
{
	struct storage_state s = { .hold_ms = STORAGE_HOLD_MS };

	CHECK(storage_observe(&s, 1000, PLENTY, -1) == 0 && !s.on);
	CHECK(storage_observe(&s, 2000, 4096, -1) == 1 && s.on);
	CHECK(storage_observe(&s, 2100, 0, -1) == 0 && s.on);	/* not again */
	CHECK(storage_observe(&s, 3000, PLENTY, -1) == -1 && !s.on);
	CHECK(storage_observe(&s, 3100, PLENTY, -1) == 0 && !s.on);
}

static void test_failed_write_holds_the_condition(void)
{
	struct storage_state s = { .hold_ms = STORAGE_HOLD_MS };

	CHECK(storage_note_failure(&s, 10000, 0) == 1 && s.on);
	CHECK(storage_note_failure(&s, 10500, 0) == 0);		/* logged once */
	/* space is fine, but the last failure is too recent */
	CHECK(storage_observe(&s, 11000, PLENTY, -1) == 0 && s.on);
	CHECK(storage_observe(&s, 10500 + STORAGE_HOLD_MS, PLENTY, -1) == -1 && !s.on);
}

static void test_inodes_count(void)
{
	struct storage_state s = { .hold_ms = STORAGE_HOLD_MS };

	CHECK(storage_observe(&s, 1000, PLENTY, 3) == 1);
	CHECK(storage_observe(&s, 2000, PLENTY, 100000) == -1);
}

/* A failing disk with free space: the condition comes back, each time held longer. */
static void test_hold_grows_when_it_keeps_coming_back(void)
{
	struct storage_state s = { .hold_ms = STORAGE_HOLD_MS };
	int64_t t = 1000, prev = 0;

	for (int i = 0; i < 8; i++) {
		CHECK(storage_note_failure(&s, t, 0) == 1);
		CHECK(s.hold_ms >= prev && s.hold_ms <= STORAGE_HOLD_MAX_MS);
		if (i > 0 && prev < STORAGE_HOLD_MAX_MS)
			CHECK(s.hold_ms == 2 * prev);
		prev = s.hold_ms;
		t += s.hold_ms;
		CHECK(storage_observe(&s, t, PLENTY, -1) == -1);
		t += 10;
	}
	CHECK(s.hold_ms == STORAGE_HOLD_MAX_MS);
	/* quiet for over a minute: back to the first hold time */
	CHECK(storage_note_failure(&s, t + 61000, 0) == 1 && s.hold_ms == STORAGE_HOLD_MS);
}

/* A busy database is held past SQLite's busy timeout: one condition for one long lock. */
static void test_busy_database_holds_longer(void)
{
	struct storage_state s = { .hold_ms = STORAGE_HOLD_MS };

	CHECK(storage_note_failure(&s, 1000, STORAGE_HOLD_BUSY_MS) == 1);
	CHECK(s.hold_ms == STORAGE_HOLD_BUSY_MS);
	CHECK(storage_observe(&s, 1000 + 10000, PLENTY, -1) == 0 && s.on);	/* next wait */
	CHECK(storage_note_failure(&s, 11000, STORAGE_HOLD_BUSY_MS) == 0);
	CHECK(storage_observe(&s, 11000 + STORAGE_HOLD_BUSY_MS, PLENTY, -1) == -1);
}

TEST_MAIN(test_busy_database_holds_longer, test_low_space_starts_and_ends_once, test_failed_write_holds_the_condition,
	  test_inodes_count, test_hold_grows_when_it_keeps_coming_back)
