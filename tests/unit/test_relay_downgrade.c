/*
 * test_relay_downgrade.c - the downgrade memory: the decision as a table (good and bad
 * sightings, the remember and defer_for windows, the guarantee), the record's changes over
 * a whole downgrade, and the tls_history table (store, load, the once-only claim, forget).
 */
#include <string.h>

#include "db.h"
#include "relay/relay_downgrade.h"
#include "unit.h"

#define H 3600
#define D (24 * H)
#define NOW 1800000000

static const struct dg_sight plain = { .tls = false };
static const struct dg_sight valid = { .tls = true, .version = "TLSv1.3", .cert_valid = true };
static const struct dg_sight badcert = { .tls = true, .version = "TLSv1.3",
					 .cert_error = "self-signed certificate" };
static const struct dg_sight dane = { .tls = true, .version = "TLSv1.2", .dane = true };
static const struct dg_sight sts = { .tls = true, .version = "TLSv1.3", .mta_sts = true };

static void test_good(void)
{
	CHECK(!downgrade_sight_good(&plain));
	CHECK(downgrade_sight_good(&valid));
	CHECK(!downgrade_sight_good(&badcert));
	CHECK(downgrade_sight_good(&dane));
	CHECK(downgrade_sight_good(&sts));
}

static void test_decide(void)
{
	static const struct dg_record none_good = { .last_good = 0 };
	static const struct dg_record fresh = { .last_good = NOW - D };
	static const struct dg_record old = { .last_good = NOW - 31 * D };
	static const struct dg_record dg_new = { .last_good = NOW - D, .downgrade_since = NOW - 60 };
	static const struct dg_record dg_old = { .last_good = NOW - D,
						 .downgrade_since = NOW - H };
	static const struct {
		const struct dg_record *rec;
		const struct dg_sight *s;
		bool g;
		int64_t remember;
		enum dg_verdict want;
	} t[] = {
		/* no memory: nothing to compare with */
		{ NULL, &plain, false, 30 * D, DG_SEND },
		{ &none_good, &plain, false, 30 * D, DG_SEND },
		{ &none_good, &badcert, false, 30 * D, DG_SEND },
		/* valid TLS now: always fine */
		{ &fresh, &valid, false, 30 * D, DG_SEND },
		{ &dg_new, &dane, false, 30 * D, DG_SEND },
		{ &dg_new, &sts, false, 30 * D, DG_SEND },
		/* a new downgrade within remember */
		{ &fresh, &plain, false, 30 * D, DG_DEFER_FIRST },
		{ &fresh, &badcert, false, 30 * D, DG_DEFER_FIRST },
		/* the good sighting is too old, or the memory is off */
		{ &old, &plain, false, 30 * D, DG_SEND },
		{ &fresh, &plain, false, 0, DG_SEND },
		/* a known downgrade: within defer_for (1h) and after */
		{ &dg_new, &plain, false, 30 * D, DG_DEFER },
		{ &dg_old, &plain, false, 30 * D, DG_SEND_EXPIRED },
		{ &dg_old, &badcert, false, 30 * D, DG_SEND_EXPIRED },
		/* the guarantee decides for itself */
		{ &fresh, &plain, true, 30 * D, DG_SEND },
		{ &dg_new, &badcert, true, 30 * D, DG_SEND },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum dg_verdict v = downgrade_decide(t[i].rec, t[i].s, t[i].g, t[i].remember, H,
						     NOW);

		if (v != t[i].want)
			fprintf(stderr, "row %zu: got %s, want %s\n", i, downgrade_verdict_name(v),
				downgrade_verdict_name(t[i].want));
		CHECK(v == t[i].want);
	}
}

/* A whole downgrade: good, stripped, deferred, expired, then plaintext is the new normal. */
static void test_lifecycle(void)
{
	struct dg_record r = { .domain = "example.org" };
	int64_t now = NOW;
	enum dg_verdict v;

	v = downgrade_decide(&r, &valid, false, 30 * D, H, now);
	CHECK(v == DG_SEND);
	downgrade_update(&r, &valid, v, "mx.example.org", now);
	CHECK(r.last_good == now && r.cert_valid && strcmp(r.version, "TLSv1.3") == 0);
	CHECK_STREQ(r.mx, "mx.example.org");

	now += D;
	v = downgrade_decide(&r, &plain, false, 30 * D, H, now);
	CHECK(v == DG_DEFER_FIRST);
	downgrade_update(&r, &plain, v, "mx.example.org", now);
	CHECK(r.downgrade_since == now);
	CHECK(strstr(r.what, "no TLS") != NULL);
	CHECK_STREQ(r.version, "TLSv1.3");		/* what was good stays on record */
	CHECK(r.last_good == NOW);

	now += H / 2;
	v = downgrade_decide(&r, &plain, false, 30 * D, H, now);
	CHECK(v == DG_DEFER);
	downgrade_update(&r, &plain, v, "mx.example.org", now);
	CHECK(r.downgrade_since == now - H / 2 && r.last_seen == now);

	now += H / 2;
	v = downgrade_decide(&r, &plain, false, 30 * D, H, now);
	CHECK(v == DG_SEND_EXPIRED);
	downgrade_update(&r, &plain, v, "mx.example.org", now);
	CHECK(r.last_good == 0 && r.downgrade_since == 0 && r.version[0] == '\0');

	/* plaintext is now what the destination is known for: no second deferral */
	now += 60;
	CHECK(downgrade_decide(&r, &plain, false, 30 * D, H, now) == DG_SEND);

	/* TLS back, then stripped again: a new downgrade */
	downgrade_update(&r, &valid, DG_SEND, "mx.example.org", now);
	now += 60;
	CHECK(downgrade_decide(&r, &badcert, false, 30 * D, H, now) == DG_DEFER_FIRST);
	downgrade_describe(&badcert, r.what, sizeof(r.what));
	CHECK(strstr(r.what, "self-signed") != NULL);
}

static void test_storage(void)
{
	char dir[] = "/tmp/pw-dg-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct dg_record r = { .domain = "example.org" }, got;

	CHECK(downgrade_load(db, "example.org", &got) == 0);
	downgrade_update(&r, &valid, DG_SEND, "mx.example.org", NOW);
	CHECK(downgrade_store(db, &r) == 0);
	CHECK(downgrade_load(db, "example.org", &got) == 1);
	CHECK(got.last_good == NOW && got.cert_valid && !got.dane);
	CHECK_STREQ(got.version, "TLSv1.3");
	CHECK_STREQ(got.mx, "mx.example.org");

	/* the downgrade is claimed once */
	downgrade_update(&got, &plain, DG_DEFER_FIRST, "mx.example.org", NOW + 10);
	CHECK(downgrade_claim(db, &got));
	CHECK(!downgrade_claim(db, &got));
	CHECK(downgrade_load(db, "example.org", &got) == 1);
	CHECK(got.downgrade_since == NOW + 10 && got.alerted == NOW + 10);
	CHECK(strstr(got.what, "no TLS") != NULL);

	/* replace, then forget */
	got.last_good = 5;
	CHECK(downgrade_store(db, &got) == 0);
	CHECK(downgrade_load(db, "example.org", &r) == 1 && r.last_good == 5);
	CHECK(downgrade_forget(db, "example.org") == 1);
	CHECK(downgrade_forget(db, "example.org") == 0);
	CHECK(downgrade_load(db, "example.org", &r) == 0);
	db_close(db);
	unit_remove_dir(dir);
}

/* An unchanged record is written again only once its sighting is DG_REFRESH old. */
static void test_changed(void)
{
	struct dg_record stored = { .domain = "example.org" }, r;
	int64_t now = NOW;

	CHECK(downgrade_changed(NULL, &stored, now));		/* nothing stored yet */
	downgrade_update(&stored, &valid, DG_SEND, "mx.example.org", now);
	r = stored;
	downgrade_update(&r, &valid, DG_SEND, "mx.example.org", now + 5);
	CHECK(!downgrade_changed(&stored, &r, now + 5));	/* only the dates moved */
	r = stored;
	downgrade_update(&r, &valid, DG_SEND, "mx.example.org", now + DG_REFRESH);
	CHECK(downgrade_changed(&stored, &r, now + DG_REFRESH));	/* time to refresh */
	r = stored;
	downgrade_update(&r, &valid, DG_SEND, "mx2.example.org", now + 5);
	CHECK(downgrade_changed(&stored, &r, now + 5));		/* another MX */
	r = stored;
	downgrade_update(&r, &plain, DG_DEFER_FIRST, "mx.example.org", now + 5);
	CHECK(downgrade_changed(&stored, &r, now + 5));		/* a downgrade begins */
	r = stored;
	downgrade_update(&r, &plain, DG_SEND_EXPIRED, "mx.example.org", now + 5);
	CHECK(downgrade_changed(&stored, &r, now + 5));		/* good TLS forgotten */
}

TEST_MAIN(test_good, test_decide, test_lifecycle, test_changed, test_storage)
