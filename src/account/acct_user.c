/*
 * acct_user.c - the routes of the signed-in user's own data (see acct_user.h).
 *
 * Held messages are found and released in the database as `postwarden queue` does; the
 * scheduler of the node holding a message polls for released recipients. Ownership is in
 * every statement (the sender among the account's addresses), never checked afterwards.
 * The subject is read from the header of the spool file when this node holds the message
 * (another node's spool is not reachable; the subject is then empty).
 */
#include "acct_user.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "buf.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "mime_words.h"
#include "strutil.h"
#include "xmalloc.h"

/* The messages of account ?N: the envelope sender is one of its addresses. */
#define ACCT_OWN(n) "lower(m.sender) IN (SELECT lower(CAST(a.addr AS TEXT)) FROM addresses a " \
		    "WHERE a.account_id = ?" #n ")"

/* ---- the subject from a spool file ---------------------------------------------------- */

/* Append what still fits: a long subject is cut, never dropped. */
static void acct_add_cut(struct buf *b, const char *p, size_t n)
{
	size_t room = b->max - b->len;

	(void)buf_add(b, p, n < room ? n : room);
}

char *acct_header_subject(const char *data, size_t len)
{
	struct buf out;
	size_t i = 0;
	bool in_subject = false;
	char *s;

	buf_init(&out, ACCT_SUBJECT_RAW);
	while (i < len) {
		size_t end = i;

		while (end < len && data[end] != '\n')
			end++;
		size_t llen = end - i;

		if (llen > 0 && data[i + llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break;		/* the end of the header section */
		if (in_subject && (data[i] == ' ' || data[i] == '\t')) {
			acct_add_cut(&out, " ", 1);
			acct_add_cut(&out, data + i + 1, llen - 1);
		} else if (in_subject) {
			break;
		} else if (llen >= 8 && strncasecmp(data + i, "Subject:", 8) == 0) {
			in_subject = true;
			acct_add_cut(&out, data + i + 8, llen - 8);
		}
		i = end + 1;
	}
	/* encoded words decoded into UTF-8; the cut to ACCT_SUBJECT_MAX comes after, so no
	 * encoded word is cut in half */
	size_t lead = 0;	/* the blank after "Subject:" takes no room */

	while (lead < out.len && (out.data[lead] == ' ' || out.data[lead] == '\t'))
		lead++;
	s = mime_words_decode(out.data ? out.data + lead : "", out.len - lead, ACCT_SUBJECT_MAX);
	buf_free(&out);
	mime_words_utf8_scrub(s);	/* raw 8-bit text: JSON strings are UTF-8 */
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	char *t = xstrdup(str_trim(s));
	free(s);
	return t;
}

static bool acct_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
			return false;
	return true;
}

/* The subject of a message this node holds, or "". */
static char *acct_subject(const struct pw_config *cfg, const char *id, const char *node)
{
	char buf[ACCT_SUBJECT_SCAN];
	char *path;
	ssize_t n;
	int fd;

	if (strcmp(node, cfg->server.node) != 0 || !acct_id_ok(id))
		return xstrdup("");
	path = xasprintf("%s/queue/%s", cfg->server.state_dir, id);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return xstrdup("");
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return acct_header_subject(buf, n > 0 ? (size_t)n : 0);
}

/* ---- /v1/me --------------------------------------------------------------------------- */

static struct account *acct_user_account(struct acct_req *r)
{
	struct account *a = account_find(acct_http_db(acct_req_server(r)), acct_req_who(r)->address);

	if (a == NULL)
		acct_reply_error(r, 503, "your account could not be read; try again");
	return a;
}

static void acct_me(struct acct_req *r, void *arg)
{
	struct account *a = acct_user_account(r);
	json_t *aliases = json_array();

	if (a == NULL) {
		json_decref(aliases);
		return;
	}
	for (size_t i = 0; i < a->naliases; i++)
		json_array_append_new(aliases, json_string(a->aliases[i]));
	acct_reply_json(r, 200, json_pack("{s:s, s:o, s:s}", "address", a->primary,
					  "aliases", aliases, "language",
					  acct_req_who(r)->language));
	account_free(a);
}

/* ---- /v1/guarantee -------------------------------------------------------------------- */

static json_t *acct_guarantee_json(const struct account *a, int64_t now)
{
	return json_pack("{s:b, s:b, s:o}", "enabled", a->guarantee,
			 "active", account_guarantee_active(a, now),
			 "off_until", a->guarantee && a->guarantee_off_until > now ?
				      json_integer(a->guarantee_off_until) : json_null());
}

static void acct_guarantee_get(struct acct_req *r, void *arg)
{
	struct account *a = acct_user_account(r);

	if (a == NULL)
		return;
	acct_reply_json(r, 200, acct_guarantee_json(a, time(NULL)));
	account_free(a);
}

static void acct_guarantee_put(struct acct_req *r, void *arg)
{
	struct db *db = acct_http_db(acct_req_server(r));
	json_t *j = acct_req_json(r, 1024), *en, *dur;
	int64_t now = time(NULL), off_until = 0;
	struct account *a;
	char *err = NULL;

	if (j == NULL)
		return;
	en = json_object_get(j, "enabled");
	dur = json_object_get(j, "for");
	if (!json_is_boolean(en) || (dur && (!json_is_integer(dur) || json_is_true(en) ||
					     json_integer_value(dur) < 60 ||
					     json_integer_value(dur) > ACCT_MAX_OFF_FOR))) {
		json_decref(j);
		acct_reply_error(r, 400, "send {\"enabled\": true}, {\"enabled\": false} or "
				 "{\"enabled\": false, \"for\": seconds} (60 to 2592000)");
		return;
	}
	if (dur)
		off_until = now + json_integer_value(dur);
	if (account_set_guarantee(db, acct_req_who(r)->address, json_is_true(en), off_until,
				  &err) < 0) {
		log_error("event=account_guarantee_failed error=\"%s\"", err);
		free(err);
		json_decref(j);
		acct_reply_error(r, 503, "the setting could not be saved; try again");
		return;
	}
	log_info("event=account_guarantee enabled=%s off_for=%lld", json_is_true(en) ? "yes" : "no",
		 (long long)(dur ? json_integer_value(dur) : 0));
	json_decref(j);
	if ((a = acct_user_account(r)) == NULL)
		return;
	acct_reply_json(r, 200, acct_guarantee_json(a, now));
	account_free(a);
}

/* ---- /v1/held ------------------------------------------------------------------------- */

static void acct_held_list(struct acct_req *r, void *arg)
{
	struct acct_http *h = acct_req_server(r);
	struct db *db = acct_http_db(h);
	struct db_stmt *st = db_prepare(db,
		"SELECT m.id, m.received, m.node, r.addr, r.reason FROM messages m "
		"JOIN recipients r ON r.msg_id = m.id WHERE r.state = 'held' AND " ACCT_OWN(1)
		" ORDER BY m.received, m.id, r.idx");
	json_t *msgs = json_array(), *cur = NULL;

	db_bind_int(st, 1, acct_req_who(r)->account_id);
	while (db_step_row(db, st)) {
		const char *id = db_col_text(st, 0);

		if (cur == NULL || strcmp(json_string_value(json_object_get(cur, "id")), id) != 0) {
			char *subject = acct_subject(acct_http_cfg(h), id, db_col_text(st, 2));

			cur = json_pack("{s:s, s:I, s:s, s:[]}", "id", id,
					"date", (json_int_t)db_col_int(st, 1), "subject", subject,
					"recipients");
			json_array_append_new(msgs, cur);
			free(subject);
		}
		json_array_append_new(json_object_get(cur, "recipients"),
				      json_pack("{s:s, s:s}", "address", db_col_text(st, 3),
						"reason", db_col_text(st, 4)));
	}
	db_finalize(st);
	if (db_error(db)) {
		db_clear_error(db);
		json_decref(msgs);
		acct_reply_error(r, 503, "the held messages could not be read; try again");
		return;
	}
	acct_reply_json(r, 200, json_pack("{s:o}", "messages", msgs));
}

/* Release held recipients of the user's messages: of id (NULL: all), of rcpt (NULL: all). */
static int64_t acct_release(struct db *db, int64_t account, const char *id, const char *rcpt)
{
	struct db_stmt *st = db_prepare(db,
		"UPDATE recipients SET state = 'queued', release = 1, next_attempt = 0, "
		"first_tls_failure = NULL WHERE state = 'held' "
		"AND (CAST(?2 AS TEXT) IS NULL OR lower(addr) = lower(?2)) "
		"AND msg_id IN (SELECT m.id FROM messages m WHERE "
		"(CAST(?1 AS TEXT) IS NULL OR m.id = ?1) AND " ACCT_OWN(3) ")");
	int64_t n;

	db_bind_text(st, 1, id);
	db_bind_text(st, 2, rcpt);
	db_bind_int(st, 3, account);
	if (db_step_done(db, st) != DB_DONE)
		n = -1;
	else
		n = db_changes(db);
	db_finalize(st);
	return n;
}

static void acct_release_answer(struct acct_req *r, int64_t n, const char *id)
{
	if (n < 0) {
		acct_reply_error(r, 503, "nothing was released (database); try again");
		return;
	}
	if (n == 0 && id) {
		acct_reply_error_code(r, 404, "held_not_yours", "you have no held message with "
				      "this ID (or no such recipient held in it)");
		return;
	}
	log_info("event=release id=%s count=%lld by=account", id ? id : "all", (long long)n);
	acct_reply_json(r, 200, json_pack("{s:I}", "released", (json_int_t)n));
}

/* POST /v1/held/ID/release */
static void acct_held_release_one(struct acct_req *r, void *arg)
{
	const char *rest = acct_req_rest(r), *slash;
	json_t *j, *rc;
	char *id;
	int64_t n;

	/* rest is "/ID/release" */
	if (rest[0] != '/' || (slash = strchr(rest + 1, '/')) == NULL ||
	    strcmp(slash, "/release") != 0) {
		acct_reply_error(r, 404, "no such endpoint");
		return;
	}
	id = xstrndup(rest + 1, (size_t)(slash - rest - 1));
	if (!acct_id_ok(id)) {
		free(id);
		acct_reply_error_code(r, 404, "held_not_yours", "you have no held message with this ID");
		return;
	}
	if ((j = acct_req_json(r, 1024)) == NULL) {
		free(id);
		return;
	}
	rc = json_object_get(j, "recipient");
	if (rc && (!json_is_string(rc) || !addr_valid(json_string_value(rc)))) {
		json_decref(j);
		free(id);
		acct_reply_error(r, 400, "recipient: an address of the message, or leave it out");
		return;
	}
	n = acct_release(acct_http_db(acct_req_server(r)), acct_req_who(r)->account_id, id,
			 rc ? json_string_value(rc) : NULL);
	json_decref(j);
	acct_release_answer(r, n, id);
	free(id);
}

/* POST /v1/held/release */
static void acct_held_release_all(struct acct_req *r, void *arg)
{
	int64_t n = acct_release(acct_http_db(acct_req_server(r)), acct_req_who(r)->account_id,
				 NULL, NULL);

	acct_release_answer(r, n, NULL);
}

/* ---- /v1/notifications ---------------------------------------------------------------- */

/*
 * What counts: every recipient of the user's messages that the guarantee held or that
 * bounced in the last N days, with the reason: rows a trigger writes into acct_notices when
 * a recipient's state changes, so they stay after the message has left the queue.
 */
/* Forget notifications older than the longest window a user can ask for. */
static void acct_notices_expire(struct db *db, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM acct_notices WHERE at < ?");

	db_bind_int(st, 1, now - ACCT_MAX_DAYS * 86400);
	db_step_done(db, st);
	db_finalize(st);
}

static void acct_notifications(struct acct_req *r, void *arg)
{
	struct db *db = acct_http_db(acct_req_server(r));
	char *days_s = acct_req_param(r, "days"), *end = NULL;
	long days = 7;
	struct db_stmt *st;
	json_t *list;

	if (days_s) {
		days = strtol(days_s, &end, 10);
		if (*days_s == '\0' || *end != '\0' || days < 1 || days > ACCT_MAX_DAYS) {
			free(days_s);
			acct_reply_error(r, 400, "days: a number from 1 to 90");
			return;
		}
	}
	free(days_s);
	acct_notices_expire(db, (int64_t)time(NULL));
	st = db_prepare(db,
		"SELECT n.at, n.kind, n.recipient, n.reason, n.msg_id FROM acct_notices n "
		"WHERE n.at >= ?2 AND n.sender IN (SELECT lower(CAST(a.addr AS TEXT)) "
		"FROM addresses a WHERE a.account_id = ?1) "
		"ORDER BY n.at DESC, n.msg_id, n.recipient LIMIT 500");
	db_bind_int(st, 1, acct_req_who(r)->account_id);
	db_bind_int(st, 2, (int64_t)time(NULL) - days * 86400);
	list = json_array();
	while (db_step_row(db, st)) {
		bool held = strcmp(db_col_text(st, 1), "held") == 0;
		const char *reason = db_col_text(st, 3);
		char *text = xasprintf(held ? "Your message to %s is held%s%s" :
					      "Your message to %s could not be delivered%s%s",
				       db_col_text(st, 2), *reason ? ": " : "", reason);

		json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:s, s:s}",
			"date", (json_int_t)db_col_int(st, 0), "kind", held ? "held" : "bounced",
			"text", text, "message", db_col_text(st, 4),
			"recipient", db_col_text(st, 2)));
		free(text);
	}
	db_finalize(st);
	if (db_error(db)) {
		db_clear_error(db);
		json_decref(list);
		acct_reply_error(r, 503, "the notifications could not be read; try again");
		return;
	}
	acct_reply_json(r, 200, json_pack("{s:o}", "notifications", list));
}

void acct_user_register(struct acct_http *h)
{
	acct_route(h, ACCT_GET, "/v1/me", ACCT_EXACT, acct_me, NULL);
	acct_route(h, ACCT_GET, "/v1/guarantee", ACCT_EXACT, acct_guarantee_get, NULL);
	acct_route(h, ACCT_PUT, "/v1/guarantee", ACCT_EXACT, acct_guarantee_put, NULL);
	acct_route(h, ACCT_GET, "/v1/held", ACCT_EXACT, acct_held_list, NULL);
	acct_route(h, ACCT_POST, "/v1/held/release", ACCT_EXACT, acct_held_release_all, NULL);
	acct_route(h, ACCT_POST, "/v1/held", 0, acct_held_release_one, NULL);
	acct_route(h, ACCT_GET, "/v1/notifications", ACCT_EXACT, acct_notifications, NULL);
}
