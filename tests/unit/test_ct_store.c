/*
 * test_ct_store.c - the CT monitor's state on a real SQLite file: a log's position moves
 * only from where it was (a second writer, another node, is refused and writes nothing),
 * a certificate seen again is not a new finding, and findings read back as stored.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctmon/ct_store.h"
#include "schema.h"
#include "unit.h"

static struct ct_finding finding(unsigned char id_byte, const char *names, int64_t index)
{
	struct ct_finding f = { .names = names, .issuer = "CN=Test CA", .serial = "01",
		.spki_sha256 = "00", .not_before = 1, .not_after = 2, .verdict = "unknown_key",
		.reason = "not an expected key", .index = index };

	memset(f.identity, id_byte, sizeof(f.identity));
	return f;
}

static void test_advance_and_findings(void)
{
	char dir[] = "/tmp/pw-ctstore-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct ct_log_pos st, to = { .log_id = "bG9n", .tree_size = 10, .has_root = true,
		.next_index = 10, .sth_timestamp = 1234 };
	unsigned char range[3] = { 1, 2, 3 };
	struct ct_finding fs[2] = { finding(1, "a.example.org", 3), finding(2, "b.example.org", 7) };
	size_t fresh = 99;
	json_t *j;

	CHECK(ct_store_log_load(db, "bG9n", &st) == DB_DONE);
	CHECK(ct_store_log_register(db, "bG9n", "https://log.example/", "rfc6962") == DB_OK);
	CHECK(ct_store_log_load(db, "bG9n", &st) == DB_ROW);
	CHECK(st.next_index == 0 && st.tree_size == 0 && !st.has_root && st.range_state == NULL);
	ct_log_pos_free(&st);
	memset(to.root_hash, 0xab, sizeof(to.root_hash));
	to.range_state = range;
	to.range_len = sizeof(range);
	CHECK(ct_store_advance(db, &to, 0, fs, 2, &fresh) == DB_OK && fresh == 2);
	CHECK(fs[0].id > 0 && fs[1].id > fs[0].id);
	CHECK(ct_store_log_load(db, "bG9n", &st) == DB_ROW);
	CHECK(st.next_index == 10 && st.tree_size == 10 && st.has_root && st.root_hash[5] == 0xab);
	CHECK(st.range_len == 3 && memcmp(st.range_state, range, 3) == 0);
	CHECK(st.sth_timestamp == 1234);
	ct_log_pos_free(&st);

	/* a writer that read the old position (another node) is refused, and writes nothing */
	struct ct_finding late = finding(3, "c.example.org", 4);
	to.next_index = 20;
	CHECK(ct_store_advance(db, &to, 0, &late, 1, &fresh) == DB_CONSTRAINT && fresh == 0);
	j = ct_store_findings_json(db, false, 100);
	CHECK(j != NULL && json_array_size(j) == 2);
	json_decref(j);

	/* the same certificate again (its precertificate, another entry): one finding */
	struct ct_finding again = finding(1, "a.example.org", 15);
	again.precert = true;
	CHECK(ct_store_advance(db, &to, 10, &again, 1, &fresh) == DB_OK && fresh == 0);
	CHECK(again.id == fs[0].id);
	j = ct_store_finding_json(db, fs[0].id);
	CHECK(j != NULL && json_array_size(json_object_get(j, "seen_in")) == 2);
	CHECK(strcmp(json_string_value(json_object_get(j, "names")), "a.example.org") == 0);
	json_decref(j);

	/* ack marks once; the list of unexpected findings still shows it, acked */
	CHECK(ct_store_ack(db, fs[1].id, 100));
	CHECK(ct_store_ack(db, fs[1].id, 200));
	CHECK(!ct_store_ack(db, 424242, 200));
	j = ct_store_finding_json(db, fs[1].id);
	CHECK(json_integer_value(json_object_get(j, "acked_at")) == 100);
	json_decref(j);
	CHECK(ct_store_finding_json(db, 424242) == NULL);
	CHECK(ct_store_alert_add(db, "split_view", "bG9n", "two tree heads of size 10",
				 "{\"a\":1}") == DB_OK);
	CHECK(ct_store_alert_add(db, "split_view", "bG9n", "two tree heads of size 10",
				 "{\"a\":2}") == DB_OK);
	CHECK(ct_store_alert_add(db, "split_view", "bG9n", "two tree heads of size 11",
				 "{\"a\":3}") == DB_OK);
	CHECK(db_query_int(db, "SELECT count(*) FROM ct_alerts WHERE kind = 'split_view'", 0) == 2);
	db_close(db);
	unit_remove_dir(dir);
}

TEST_MAIN(test_advance_and_findings)
