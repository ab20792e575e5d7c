/*
 * mig_mail.c - the mail copy: the plan (folders, special-use mapping, subscriptions) and
 * the workers that copy folder after folder (see mig_mail.h for the guarantees).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "buf.h"
#include "imap_utf7.h"
#include "log.h"
#include "mig_mail.h"
#include "mig_mail_map.h"
#include "strutil.h"
#include "xmalloc.h"

#define BATCH_MSGS 200
#define BATCH_BYTES (32u << 20)
#define MIG_FOLDER_ATTEMPTS 3	/* per folder, on fresh connections after a lost one */
/*
 * Messages above STREAM_MIN bytes are streamed: read from the source's FETCH literal and
 * written into the destination's APPEND literal STREAM_CHUNK bytes at a time, so memory
 * does not grow with the message (a 50 MB attachment, or several at once, one per worker).
 * Smaller ones are batched, read whole one after the other: there a FETCH of 200 messages
 * saves round trips, while for a message of 1 MiB and more the two extra round trips of
 * streaming it on its own (its flags and date first, then its body) cost little.
 */
#define STREAM_MIN (1u << 20)
#define STREAM_CHUNK (64u << 10)

const char *mig_mail_advice(enum imap_fail f, const char *code, bool source, const char *hint)
{
	switch (f) {
	case IMAP_F_CONNECT:
		return source ? "check the server name and port of the old provider; some providers "
				"have IMAP switched off until you enable it in their web settings"
			      : "check [migrate] destination and that the mail server is running";
	case IMAP_F_TLS:
		return "the server's certificate could not be verified; check the host name "
		       "(or [migrate] ca_file for a private CA)";
	case IMAP_F_AUTH:
		if (!source)
			return "check the destination user name and password (or the master user)";
		if (hint != NULL)
			return hint;
		if (code != NULL && strcasecmp(code, "UNAVAILABLE") == 0)
			return "the old provider is temporarily unavailable: try again later";
		return "wrong user name or password; if your provider uses two-step sign-in, create "
		       "an app password and use it instead, and make sure IMAP access is enabled";
	case IMAP_F_NO:
		if (code != NULL && strcasecmp(code, "OVERQUOTA") == 0)
			return "the destination mailbox is full: make room or raise the quota, then "
			       "run the job again (it continues where it stopped)";
		return "the server refused the command";
	case IMAP_F_PROTO:
		return "the server answered something this client does not understand";
	case IMAP_F_CLOSED:
		return "the connection was lost: run the job again, it continues where it stopped";
	default:
		return "";
	}
}

static void fatal_set(struct mig_mail *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fatal_set(struct mig_mail *m, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->lock);
	if (m->fatal == NULL) {
		va_start(ap, fmt);
		m->fatal = xvasprintf(fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&m->lock);
}

/* Connect and log in; false with *im describing the failure. */
static bool open_side(struct mig_mail *m, struct imap *im, const struct mig_endpoint *e)
{
	char addr[64];
	struct imap_opts io = { e->host,
				str_list_value(m->o.hosts, e->host, addr, sizeof(addr)) ? addr : NULL,
				e->port, e->tls, m->ssl, m->o.timeout, m->o.max_message + 65536,
				e == &m->o.src && !m->o.allow_private };

	if (!imap_connect(im, &io))
		return false;
	if (!imap_login(im, e->auth, e->user, e->cred))
		return false;
	/* DEFLATE only towards the old provider, across the Internet: to the destination, in
	 * the provider's own network, it costs more processor time than it saves (measured:
	 * 225 against 522 messages per second on loopback with both compressed). Nor from a
	 * source on loopback, where there is no link to spare and compressing costs the
	 * source server four times its processor time (3 -> 11-32 s for 250 MB measured) */
	if (e == &m->o.src && !m->o.no_compress &&
	    (m->o.compress_local || !imap_peer_loopback(im)) && !imap_try_compress(im))
		return false;
	return true;
}

/* A refused OAuth token: what to do is not what a wrong password asks for. */
#define MIG_TOKEN_ADVICE "the token was refused: it may have expired or been revoked. Get a " \
	"new token from the old provider (sign in there again) and run the job again"

static bool open_pair(struct mig_mail *m, struct imap *s, struct imap *d, bool report)
{
	if (!open_side(m, s, &m->o.src)) {
		if (report)
			fatal_set(m, "old provider: %s. What to do: %s", s->err,
				  mig_mail_advice(s->fail, s->last_code, true,
						  m->o.src.auth == IMAP_AUTH_PASSWORD ?
						  m->o.src.hint : MIG_TOKEN_ADVICE));
		imap_close(s);
		return false;
	}
	if (!open_side(m, d, &m->o.dst)) {
		if (report)
			fatal_set(m, "destination: %s. What to do: %s", d->err,
				  mig_mail_advice(d->fail, d->last_code, false, NULL));
		imap_close(s);
		imap_close(d);
		return false;
	}
	return true;
}

/* ---- the plan ---- */

struct list_ctx {
	struct mig_mail *m;
	bool dest;
	bool lsub;
};

static char *node_str(const struct imap_node *n)
{
	if (n == NULL || n->type == IMAP_NIL || n->type == IMAP_LIST)
		return NULL;
	return xstrndup(n->p, n->len);
}

static void on_list(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct list_ctx *c = arg;
	struct mig_mail *m = c->m;
	const struct imap_node *attrs = r->args.child, *sep, *name;
	char *nm;
	int su = MIG_SU_NONE;
	bool noselect = false, subscribed = c->lsub;

	if ((strcmp(r->name, "LIST") != 0 && strcmp(r->name, "LSUB") != 0) || attrs == NULL ||
	    attrs->type != IMAP_LIST || (sep = attrs->next) == NULL || (name = sep->next) == NULL)
		return;
	if (sep->type == IMAP_STRING && sep->len == 1)
		im->sep = sep->p[0];
	for (const struct imap_node *a = attrs->child; a != NULL; a = a->next) {
		int s = mig_special_from_attr(a->p, a->len);

		if (s != MIG_SU_NONE)
			su = s;
		if (imap_node_is(a, "\\Noselect") || imap_node_is(a, "\\NonExistent"))
			noselect = true;
		if (imap_node_is(a, "\\Subscribed"))
			subscribed = true;
	}
	nm = node_str(name);
	if (nm == NULL || strlen(nm) > IMAP_NAME_MAX) {
		free(nm);
		return;
	}
	if (c->dest) {
		if (su > MIG_SU_INBOX && su < (int)(sizeof(m->dst_special) / sizeof(m->dst_special[0])) &&
		    m->dst_special[su] == NULL)
			m->dst_special[su] = xstrdup(nm);
		free(nm);
		return;
	}
	for (size_t i = 0; i < m->nfolders; i++) {
		if (strcmp(m->folders[i].src, nm) == 0) {
			/* LSUB after LIST: only the subscription is news */
			m->folders[i].subscribed |= subscribed;
			free(nm);
			return;
		}
	}
	if (c->lsub) {
		free(nm);	/* subscribed but not existing: nothing to copy */
		return;
	}
	m->folders = xreallocarray(m->folders, m->nfolders + 1, sizeof(*m->folders));
	struct mig_folder *f = &m->folders[m->nfolders++];

	memset(f, 0, sizeof(*f));
	f->src = nm;
	f->special = su;
	f->noselect = noselect;
	f->subscribed = subscribed;
}

static bool list_all(struct mig_mail *m, struct imap *im, bool dest)
{
	struct list_ctx c = { m, dest, false };
	bool su = imap_has_cap(im, "SPECIAL-USE");

	if (imap_has_cap(im, "LIST-EXTENDED"))
		return imap_simple(im, on_list, &c, "LIST \"\" \"*\" RETURN (SUBSCRIBED%s)",
				   su ? " SPECIAL-USE" : "");
	if (!imap_simple(im, on_list, &c, "LIST \"\" \"*\""))
		return false;
	c.lsub = true;
	return dest || imap_simple(im, on_list, &c, "LSUB \"\" \"*\"");
}

/* The last component of a UTF-8 name. */
static const char *leaf_of(const char *utf8, char sep)
{
	const char *p = sep ? strrchr(utf8, sep) : NULL;

	return p ? p + 1 : utf8;
}

/* Decide the destination name of every folder. */
static void map_folders(struct mig_mail *m, char ssep)
{
	bool by_attr[16] = { false };

	/* a name stands for a special folder only when no folder has that attribute */
	for (size_t i = 0; i < m->nfolders; i++)
		if (m->folders[i].special > 0 && m->folders[i].special < 16)
			by_attr[m->folders[i].special] = true;
	for (size_t i = 0; i < m->nfolders; i++) {
		struct mig_folder *f = &m->folders[i];
		char *utf8 = imap_utf7_decode(f->src, strlen(f->src));

		f->display = utf8 ? utf8 : xstrdup(f->src);
		if (strcasecmp(f->src, "INBOX") == 0)
			f->special = MIG_SU_INBOX;
		/* by name only for top-level folders (and Gmail's [Gmail]/...) */
		if (f->special == MIG_SU_NONE && utf8 != NULL &&
		    (strchr(utf8, ssep) == NULL || strncmp(utf8, "[Gmail]", 7) == 0))
		{
			int su = mig_special_from_name(leaf_of(utf8, ssep));

			f->special = su > 0 && su < 16 && by_attr[su] ? MIG_SU_NONE : su;
		}
		if (m->o.src.gmail && mig_gmail_skip((enum mig_special)f->special))
			f->skip = true;
		if (m->o.src.gmail && f->special == MIG_SU_ALL) {
			f->all_mail = true;
			f->special = MIG_SU_ARCHIVE;
		}
		if (f->special == MIG_SU_ALL || f->special == MIG_SU_FLAGGED ||
		    f->special == MIG_SU_IMPORTANT)
			f->special = MIG_SU_NONE;	/* copied as ordinary folders if not skipped */
		if (f->special == MIG_SU_INBOX) {
			f->dst = xstrdup("INBOX");
		} else if (f->special > MIG_SU_INBOX) {
			const char *d = m->dst_special[f->special];

			f->dst = xstrdup(d ? d : mig_special_default_name((enum mig_special)f->special));
		} else {
			f->dst = mig_map_name(f->src, ssep, m->dsep);
			if (f->dst == NULL) {
				f->dst = xstrdup(f->src);
				f->skip = true;
				f->error = xstrdup("the folder name is not valid modified UTF-7");
			}
		}
	}
}

static int folder_order(const void *a, const void *b)
{
	const struct mig_folder *x = a, *y = b;

	/* Gmail's All Mail last: it needs every other folder's messages */
	if (x->all_mail != y->all_mail)
		return x->all_mail ? 1 : -1;
	/* INBOX first (the user looks there), then by name so parents precede children */
	if ((x->special == MIG_SU_INBOX) != (y->special == MIG_SU_INBOX))
		return x->special == MIG_SU_INBOX ? -1 : 1;
	return strcmp(x->src, y->src);
}

static bool ensure_dest(struct mig_mail *m, struct mig_folder *f, struct imap *d);

bool mig_mail_prepare(struct mig_mail *m, const struct mig_mail_opts *o)
{
	struct imap s, d;
	char *err = NULL;
	bool ok;

	memset(m, 0, sizeof(*m));
	m->o = *o;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->open_lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->ssl = imap_ssl_ctx_new(o->ca_file, &err);
	if (m->ssl == NULL) {
		m->fatal = xasprintf("TLS: %s", err);
		free(err);
		return false;
	}
	if (!open_pair(m, &s, &d, true))
		return false;
	ok = list_all(m, &d, true);
	m->dsep = d.sep;
	if (ok)
		ok = list_all(m, &s, false);
	if (!ok)
		fatal_set(m, "listing folders failed: %s", d.fail != IMAP_F_NONE ? d.err : s.err);
	else {
		map_folders(m, s.sep);
		qsort(m->folders, m->nfolders, sizeof(*m->folders), folder_order);
		/* every destination folder is created here, one after the other: parents before
		 * children, and no concurrent CREATEs (Dovecot's list index locks can deadlock) */
		for (size_t i = 0; i < m->nfolders && ok; i++) {
			struct mig_folder *f = &m->folders[i];

			if (f->skip || f->noselect || f->error != NULL)
				continue;
			if (!ensure_dest(m, f, &d) && d.fail == IMAP_F_CLOSED) {
				fatal_set(m, "destination: %s. What to do: %s", d.err,
					  mig_mail_advice(d.fail, d.last_code, false, NULL));
				ok = false;
			}
		}
		for (size_t i = 0; i < m->nfolders; i++)
			if (!m->folders[i].skip && !m->folders[i].noselect)
				m->p.folders_total++;
	}
	imap_close(&s);
	imap_close(&d);
	return ok;
}

struct mig_folder *mig_mail_folder(struct mig_mail *m, const char *src)
{
	for (size_t i = 0; i < m->nfolders; i++)
		if (strcmp(m->folders[i].src, src) == 0)
			return &m->folders[i];
	return NULL;
}

void mig_mail_progress(struct mig_mail *m, struct mig_progress *p)
{
	pthread_mutex_lock(&m->lock);
	*p = m->p;
	pthread_mutex_unlock(&m->lock);
}

/* ---- copying one folder ---- */

struct msgkey {
	uint64_t size;
	long long date;
	char *msgid;	/* normalised Message-ID, "" when none */
	uint32_t uid;
	bool used;
};

struct keyset {
	struct msgkey *k;
	size_t n;
};

static int key_cmp(const void *a, const void *b)
{
	const struct msgkey *x = a, *y = b;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return strcmp(x->msgid, y->msgid);
}

/* "Message-ID: <a@b>\r\n\r\n" to "<a@b>" (unfolded, no white space). */
static char *norm_msgid(const struct imap_node *n)
{
	struct buf b;
	const char *p, *end;

	buf_init(&b, 0);
	if (n != NULL && n->type == IMAP_STRING) {
		p = memchr(n->p, ':', n->len);
		end = n->p + n->len;
		for (p = p ? p + 1 : end; p < end; p++)
			if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
				buf_add(&b, p, 1);
	}
	return buf_release(&b, NULL);
}

static void on_keys(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct keyset *ks = arg;
	const struct imap_node *l = r->args.child, *hdr = NULL;
	struct msgkey k = { 0 };
	const struct imap_node *d;

	if (strcmp(r->name, "FETCH") != 0 || l == NULL || l->type != IMAP_LIST)
		return;
	if (!imap_node_u32(imap_fetch_item(l, "UID"), &k.uid) ||
	    !imap_node_u64(imap_fetch_item(l, "RFC822.SIZE"), &k.size))
		return;
	d = imap_fetch_item(l, "INTERNALDATE");
	k.date = d && d->type == IMAP_STRING ? mig_parse_internaldate(d->p, d->len) : -1;
	for (const struct imap_node *n = l->child; n != NULL && n->next != NULL; n = n->next->next)
		if (n->type == IMAP_ATOM && n->len > 17 && strncasecmp(n->p, "BODY[HEADER.FIELDS", 18) == 0)
			hdr = n->next;
	k.msgid = norm_msgid(hdr);
	ks->k = xreallocarray(ks->k, ks->n + 1, sizeof(*ks->k));
	ks->k[ks->n++] = k;
}

static void keys_free(struct keyset *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i].msgid);
	free(ks->k);
	ks->k = NULL;
	ks->n = 0;
}

/* Gmail: keys of the messages of every other folder (a growing array, sorted on use). */
struct msgkey_set {
	struct msgkey *k;
	size_t n;
	bool sorted;
};

static void seen_add(struct mig_mail *m, const struct keyset *ks)
{
	pthread_mutex_lock(&m->lock);
	if (m->seen == NULL)
		m->seen = xcalloc(1, sizeof(*m->seen));
	m->seen->k = xreallocarray(m->seen->k, m->seen->n + ks->n + 1, sizeof(*m->seen->k));
	for (size_t i = 0; i < ks->n; i++) {
		m->seen->k[m->seen->n] = ks->k[i];
		m->seen->k[m->seen->n].msgid = xstrdup(ks->k[i].msgid);
		m->seen->n++;
	}
	m->seen->sorted = false;
	pthread_mutex_unlock(&m->lock);
}

static bool seen_has(struct mig_mail *m, const struct msgkey *k)
{
	bool hit;

	pthread_mutex_lock(&m->lock);
	if (m->seen != NULL && !m->seen->sorted && m->seen->n > 1)
		qsort(m->seen->k, m->seen->n, sizeof(*m->seen->k), key_cmp);
	if (m->seen != NULL)
		m->seen->sorted = true;
	hit = m->seen != NULL && m->seen->n > 0 &&
	      bsearch(k, m->seen->k, m->seen->n, sizeof(*k), key_cmp) != NULL;
	pthread_mutex_unlock(&m->lock);
	return hit;
}

#define KEY_ITEMS "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"

struct sel_ctx {
	uint32_t uidvalidity, exists;
};

static void on_select(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct sel_ctx *c = arg;

	if (r->status == IMAP_ST_OK && strcmp(r->code, "UIDVALIDITY") == 0) {
		char t[16];
		size_t n = r->code_arg_len < sizeof(t) - 1 ? r->code_arg_len : sizeof(t) - 1;

		memcpy(t, r->code_arg, n);
		t[n] = '\0';
		c->uidvalidity = (uint32_t)strtoul(t, NULL, 10);
	}
	if (r->has_number && strcmp(r->name, "EXISTS") == 0)
		c->exists = r->number;
}

static void quote_name(struct buf *b, const char *name)
{
	buf_reset(b);
	imap_quote(b, name);
}

static void note_failure(struct mig_mail *m, struct mig_folder *f, uint32_t uid, const char *why)
{
	struct buf b;

	buf_init(&b, 0);
	if (f->failures)
		buf_adds(&b, f->failures);
	buf_addf(&b, "UID %u: %s\n", uid, why);
	pthread_mutex_lock(&m->lock);
	free(f->failures);
	f->failures = buf_release(&b, NULL);
	f->failed++;
	m->p.failed++;
	f->dirty = true;
	pthread_mutex_unlock(&m->lock);
}

/* Flags of a FETCH as an APPEND flag list, \Recent dropped. */
static void flags_of(const struct imap_node *fl, struct buf *out)
{
	bool first = true;

	buf_add(out, "(", 1);
	for (const struct imap_node *n = fl ? fl->child : NULL; n != NULL; n = n->next) {
		if (n->type != IMAP_ATOM || imap_node_is(n, "\\Recent"))
			continue;
		if (!first)
			buf_add(out, " ", 1);
		buf_add(out, n->p, n->len);
		first = false;
	}
	buf_add(out, ")", 1);
}

struct copy_ctx {
	struct mig_mail *m;
	struct mig_folder *f;
	struct imap *s, *d;
	bool multi, literal_plus;
	char multi_tag[16];
	bool multi_open;
	char (*tags)[16];	/* per message, when not MULTIAPPEND */
	uint32_t *uids;
	uint64_t *sizes;
	size_t n;
	bool dest_failed;	/* the destination connection broke */
	bool full;		/* the destination said OVERQUOTA */
	size_t cap;		/* messages asked for: a server sending more is ignored */
	uint32_t high;		/* highest UID sent in this batch */
	uint64_t bytes;
};

/* Send one message to the destination as (part of) an APPEND. */
static bool put_message(struct copy_ctx *c, uint32_t uid, const struct imap_node *l)
{
	const struct imap_node *body = imap_fetch_item(l, "BODY[]");
	const struct imap_node *date = imap_fetch_item(l, "INTERNALDATE");
	struct buf meta;
	struct imap *d = c->d;

	if (body == NULL || body->type != IMAP_STRING || date == NULL || date->type != IMAP_STRING)
		return false;
	buf_init(&meta, 0);
	flags_of(imap_fetch_item(l, "FLAGS"), &meta);
	buf_addf(&meta, " \"%.*s\" ", (int)date->len, date->p);
	if (c->multi) {
		if (!c->multi_open) {
			struct buf q;

			buf_init(&q, 0);
			quote_name(&q, c->f->dst);
			imap_cmd(d, c->multi_tag, "APPEND %s", q.data);
			d->out.len -= 2;	/* messages follow on the same command */
			buf_free(&q);
			c->multi_open = true;
		}
		buf_addf(&d->out, " %s{%zu+}\r\n", meta.data, body->len);
		imap_put(d, body->p, body->len);
	} else {
		struct buf q;

		buf_init(&q, 0);
		quote_name(&q, c->f->dst);
		imap_cmd(d, c->tags[c->n], "APPEND %s %s{%zu%s}", q.data, meta.data, body->len,
			 c->literal_plus ? "+" : "");
		buf_free(&q);
		if (!c->literal_plus) {
			/* synchronising literal: wait for the go-ahead */
			struct imap_resp r;

			if (!imap_read(d, &r)) {
				buf_free(&meta);
				c->dest_failed = true;
				return false;
			}
			if (r.kind != IMAP_RESP_CONT) {
				/* refused at once (e.g. too large): imap_wait reads it again */
				d->in_used = 0;
			} else {
				imap_put(d, body->p, body->len);
				buf_add(&d->out, "\r\n", 2);
			}
			imap_resp_free(&r);
			c->uids[c->n] = uid;
			c->sizes[c->n] = body->len;
			if (!imap_wait(d, c->tags[c->n], NULL, NULL)) {
				if (d->fail != IMAP_F_NO) {
					c->dest_failed = true;
					buf_free(&meta);
					return false;
				}
				if (strcasecmp(d->last_code, "OVERQUOTA") == 0)
					c->full = true;
				note_failure(c->m, c->f, uid, d->err);
				c->sizes[c->n] = UINT64_MAX;
			} else {
				c->bytes += body->len;
			}
			c->tags[c->n++][0] = '\0';	/* answered already */
			buf_free(&meta);
			return true;
		}
		imap_put(d, body->p, body->len);
		buf_add(&d->out, "\r\n", 2);
	}
	c->uids[c->n] = uid;
	c->sizes[c->n++] = body->len;
	c->bytes += body->len;
	buf_free(&meta);
	return true;
}

static void on_body(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct copy_ctx *c = arg;
	const struct imap_node *l = r->args.child;
	uint32_t uid;

	if (strcmp(r->name, "FETCH") != 0 || l == NULL || l->type != IMAP_LIST || c->dest_failed ||
	    c->n >= c->cap ||
	    !imap_node_u32(imap_fetch_item(l, "UID"), &uid) || imap_fetch_item(l, "BODY[]") == NULL)
		return;
	if (!put_message(c, uid, l))
		return;
	if (uid > c->high)
		c->high = uid;
}

static void uid_set(struct buf *b, const struct msgkey *todo, size_t n)
{
	buf_reset(b);
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		while (j + 1 < n && todo[j + 1].uid == todo[j].uid + 1)
			j++;
		if (b->len > 0)
			buf_add(b, ",", 1);
		if (j > i)
			buf_addf(b, "%u:%u", todo[i].uid, todo[j].uid);
		else
			buf_addf(b, "%u", todo[i].uid);
		i = j;
	}
}

enum batch_rc { BATCH_OK, BATCH_RETRY_SINGLY, BATCH_SRC_LOST, BATCH_DST_LOST, BATCH_FULL };

/* Queue and send the UID FETCH of todo[0..n); its tag goes to tag. */
static void send_fetch(struct imap *s, const struct msgkey *todo, size_t n, char *tag)
{
	struct buf set;

	buf_init(&set, 0);
	uid_set(&set, todo, n);
	imap_cmd(s, tag, "UID FETCH %s (UID FLAGS INTERNALDATE BODY.PEEK[])", set.data);
	(void)imap_flush(s);	/* a failure shows at the next read */
	buf_free(&set);
}

/*
 * Copy the messages todo[0..n): fetch them in one command and append as they arrive.
 * tag: the FETCH's tag when it was sent already (by the previous batch), else "".
 * next[0..nn): the following batch; its FETCH is sent as soon as this batch's messages
 * are all read, so that the source sends it while the destination still stores this one.
 * Its tag goes to next_tag ("" when it was not sent).
 */
static enum batch_rc copy_batch(struct mig_mail *m, struct mig_folder *f, struct imap *s,
				struct imap *d, const struct msgkey *todo, size_t n, bool multi,
				const char *tag, const struct msgkey *next, size_t nn, char *next_tag)
{
	struct copy_ctx c = { .m = m, .f = f, .s = s, .d = d };
	char own[16];
	bool fetched;
	enum batch_rc rc = BATCH_OK;

	c.multi = multi;
	c.cap = n;
	c.literal_plus = imap_has_cap(d, "LITERAL+");
	c.tags = xcalloc(n, sizeof(*c.tags));
	c.uids = xcalloc(n, sizeof(*c.uids));
	c.sizes = xcalloc(n, sizeof(*c.sizes));
	next_tag[0] = '\0';
	if (tag[0] == '\0') {
		send_fetch(s, todo, n, own);
		tag = own;
	}
	fetched = imap_wait(s, tag, on_body, &c);
	if (fetched && !c.dest_failed && nn > 0)
		send_fetch(s, next, nn, next_tag);
	if (c.dest_failed) {
		rc = BATCH_DST_LOST;
	} else if (c.multi && c.multi_open) {
		buf_add(&d->out, "\r\n", 2);
		if (!imap_wait(d, c.multi_tag, NULL, NULL)) {
			if (d->fail == IMAP_F_NO && strcasecmp(d->last_code, "OVERQUOTA") == 0)
				rc = BATCH_FULL;
			else if (d->fail == IMAP_F_NO)
				rc = BATCH_RETRY_SINGLY;	/* one message spoilt the lot */
			else
				rc = BATCH_DST_LOST;
			c.n = 0;
		}
	} else {
		if (c.full)
			rc = BATCH_FULL;
		for (size_t i = 0; i < c.n; i++) {
			if (c.tags[i][0] == '\0' || imap_wait(d, c.tags[i], NULL, NULL))
				continue;
			if (d->fail != IMAP_F_NO) {
				rc = BATCH_DST_LOST;
				c.n = i;
				break;
			}
			if (strcasecmp(d->last_code, "OVERQUOTA") == 0)
				rc = BATCH_FULL;
			note_failure(m, f, c.uids[i], d->err);
			c.sizes[i] = UINT64_MAX;	/* not copied */
		}
	}
	if (rc == BATCH_OK || rc == BATCH_FULL || (rc == BATCH_DST_LOST && !c.multi)) {
		pthread_mutex_lock(&m->lock);
		for (size_t i = 0; i < c.n; i++) {
			if (c.sizes[i] == UINT64_MAX)
				continue;
			f->copied++;
			f->bytes += c.sizes[i];
			m->p.msgs_done++;
			m->p.bytes_done += c.sizes[i];
		}
		f->dirty = true;
		pthread_mutex_unlock(&m->lock);
	}
	if (rc == BATCH_OK && !fetched)
		rc = s->fail == IMAP_F_NO ? BATCH_OK : BATCH_SRC_LOST;
	if (rc == BATCH_OK && fetched) {
		/* every message of the batch is at the destination or listed as failed */
		pthread_mutex_lock(&m->lock);
		if (todo[n - 1].uid > f->last_uid && f->failed == 0)
			f->last_uid = todo[n - 1].uid;
		pthread_mutex_unlock(&m->lock);
	}
	free(c.tags);
	free(c.uids);
	free(c.sizes);
	return rc;
}

/* Read and drop the answer to a FETCH sent ahead that will not be used; false when the
 * source connection broke. */
static bool drop_fetch(struct imap *s, char *tag)
{
	bool ok = true;

	if (tag[0] != '\0')
		ok = imap_wait(s, tag, NULL, NULL) || s->fail == IMAP_F_NO;
	tag[0] = '\0';
	return ok;
}

/* How many of todo[0..n) go into one batch: none when todo[0] is to be streamed, and a
 * batch ends before the next message that is. */
static size_t batch_len(const struct msgkey *todo, size_t n)
{
	size_t cnt = 0;
	uint64_t bytes = 0;

	while (cnt < n && cnt < BATCH_MSGS && todo[cnt].size <= STREAM_MIN &&
	       (cnt == 0 || bytes + todo[cnt].size <= BATCH_BYTES))
		bytes += todo[cnt++].size;
	return cnt;
}

/* ---- one large message, streamed ---- */

struct meta_ctx {
	uint32_t uid;
	bool found;
	struct buf flags;	/* the APPEND flag list */
	char date[64];		/* INTERNALDATE */
};

static void on_meta(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct meta_ctx *c = arg;
	const struct imap_node *l = r->args.child, *date;
	uint32_t uid;

	if (strcmp(r->name, "FETCH") != 0 || l == NULL || l->type != IMAP_LIST ||
	    !imap_node_u32(imap_fetch_item(l, "UID"), &uid) || uid != c->uid ||
	    (date = imap_fetch_item(l, "INTERNALDATE")) == NULL || date->type != IMAP_STRING ||
	    date->len >= sizeof(c->date))
		return;
	buf_reset(&c->flags);
	flags_of(imap_fetch_item(l, "FLAGS"), &c->flags);
	memcpy(c->date, date->p, date->len);
	c->date[date->len] = '\0';
	c->found = true;
}

/* Read and drop the rest of a body that is not to be appended; false when the source
 * connection broke. */
static bool drain_body(struct imap *s, const char *tag)
{
	const char *p;
	long got;

	while ((got = imap_body_read(s, &p, STREAM_CHUNK)) > 0)
		;
	return got == 0 && (imap_body_end(s, tag) || s->fail == IMAP_F_NO);
}

/* The destination answered an APPEND with NO: the message is listed as not copied. */
static enum batch_rc append_refused(struct mig_mail *m, struct mig_folder *f, struct imap *d,
				    uint32_t uid)
{
	if (d->fail != IMAP_F_NO)
		return BATCH_DST_LOST;
	note_failure(m, f, uid, d->err);
	return strcasecmp(d->last_code, "OVERQUOTA") == 0 ? BATCH_FULL : BATCH_OK;
}

/* Bytes of a streamed message shown as done while it passes (taken back if it fails), so
 * that progress moves during a long message. */
static void progress_bytes(struct mig_mail *m, uint64_t add, uint64_t sub)
{
	pthread_mutex_lock(&m->lock);
	m->p.bytes_done += add;
	m->p.bytes_done -= sub < m->p.bytes_done ? sub : m->p.bytes_done;
	pthread_mutex_unlock(&m->lock);
}

/* A streamed message is stored: counted, its progress bytes already are. */
static void count_streamed(struct mig_mail *m, struct mig_folder *f, uint32_t uid, uint64_t size)
{
	pthread_mutex_lock(&m->lock);
	f->copied++;
	f->bytes += size;
	m->p.msgs_done++;
	if (uid > f->last_uid && f->failed == 0)
		f->last_uid = uid;
	f->dirty = true;
	pthread_mutex_unlock(&m->lock);
}

/*
 * The APPEND of a body of size bytes whose literal the source is about to send (FETCH stag):
 * the command goes first ({N+} at once with LITERAL+, else after the server's go-ahead),
 * then the body piece by piece as it arrives. When the source breaks off, the destination
 * connection is abandoned with the literal unfinished: the server stores nothing of it,
 * and the message is not counted, so the folder's retry copies it again.
 */
static enum batch_rc stream_append(struct mig_mail *m, struct mig_folder *f, struct imap *s,
				   struct imap *d, const struct meta_ctx *mc, const char *stag,
				   uint64_t size)
{
	bool lp = imap_has_cap(d, "LITERAL+");
	uint64_t sent = 0;
	char dtag[16];
	struct buf q;
	const char *p;
	long got;
	enum batch_rc rc;

	buf_init(&q, 0);
	quote_name(&q, f->dst);
	imap_cmd(d, dtag, "APPEND %s %s \"%s\" {%llu%s}", q.data, mc->flags.data, mc->date,
		 (unsigned long long)size, lp ? "+" : "");
	buf_free(&q);
	if (!lp) {
		struct imap_resp r;
		bool go;

		if (!imap_read(d, &r))
			return BATCH_DST_LOST;
		go = r.kind == IMAP_RESP_CONT;
		imap_resp_free(&r);
		if (!go) {
			/* refused before the body (too large, say): imap_wait reads it again */
			d->in_used = 0;
			if (imap_wait(d, dtag, NULL, NULL))
				return BATCH_DST_LOST;	/* OK to an APPEND with no message */
			rc = append_refused(m, f, d, mc->uid);
			if (rc == BATCH_DST_LOST)
				return rc;
			return drain_body(s, stag) ? rc : BATCH_SRC_LOST;
		}
	}
	while ((got = imap_body_read(s, &p, STREAM_CHUNK)) > 0) {
		buf_add(&d->out, p, (size_t)got);
		if (!imap_flush(d))
			break;
		progress_bytes(m, (uint64_t)got, 0);
		sent += (uint64_t)got;
	}
	if (got != 0) {
		progress_bytes(m, 0, sent);
		if (got > 0)
			return BATCH_DST_LOST;
		imap_abandon(d);
		return BATCH_SRC_LOST;
	}
	buf_add(&d->out, "\r\n", 2);
	if (imap_wait(d, dtag, NULL, NULL)) {
		count_streamed(m, f, mc->uid, size);
		rc = BATCH_OK;
	} else {
		progress_bytes(m, 0, sent);
		if ((rc = append_refused(m, f, d, mc->uid)) == BATCH_DST_LOST)
			return rc;
	}
	return imap_body_end(s, stag) || s->fail == IMAP_F_NO ? rc : BATCH_SRC_LOST;
}

/*
 * Copy one message too large to batch without holding it whole: its flags and INTERNALDATE
 * first (the APPEND line needs them before the body), then its body streamed.
 */
static enum batch_rc stream_message(struct mig_mail *m, struct mig_folder *f, struct imap *s,
				    struct imap *d, const struct msgkey *k)
{
	struct meta_ctx mc = { .uid = k->uid };
	char stag[16];
	uint64_t size;
	enum batch_rc rc = BATCH_OK;

	buf_init(&mc.flags, 0);
	if (!imap_simple(s, on_meta, &mc, "UID FETCH %u (UID FLAGS INTERNALDATE)", k->uid)) {
		rc = s->fail == IMAP_F_NO ? BATCH_OK : BATCH_SRC_LOST;
		if (rc == BATCH_OK)
			note_failure(m, f, k->uid, s->err);
		goto out;
	}
	if (!mc.found)
		goto out;	/* expunged since the plan: nothing to copy */
	imap_cmd(s, stag, "UID FETCH %u (UID BODY.PEEK[])", k->uid);
	if (!imap_body_begin(s, stag, &size)) {
		rc = s->fail == IMAP_F_NO ? BATCH_OK : BATCH_SRC_LOST;
		if (rc == BATCH_OK)
			note_failure(m, f, k->uid, s->err);
		goto out;
	}
	if (size == UINT64_MAX)
		goto out;	/* answered without the body: expunged meanwhile */
	rc = stream_append(m, f, s, d, &mc, stag, size);
out:
	buf_free(&mc.flags);
	return rc;
}

static void folder_error(struct mig_mail *m, struct mig_folder *f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void folder_error(struct mig_mail *m, struct mig_folder *f, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->lock);
	free(f->error);
	va_start(ap, fmt);
	f->error = xvasprintf(fmt, ap);
	va_end(ap);
	f->dirty = true;
	pthread_mutex_unlock(&m->lock);
}

/* Make sure the destination folder exists (and is subscribed when the source's was). */
static bool ensure_dest(struct mig_mail *m, struct mig_folder *f, struct imap *d)
{
	struct buf q;
	bool ok = true;

	if (strcasecmp(f->dst, "INBOX") == 0)
		return true;
	buf_init(&q, 0);
	quote_name(&q, f->dst);
	if (!imap_simple(d, NULL, NULL, "CREATE %s", q.data) &&
	    (d->fail != IMAP_F_NO || (strcasecmp(d->last_code, "ALREADYEXISTS") != 0 &&
				      d->last_code[0] != '\0'))) {
		folder_error(m, f, "cannot create the folder at the destination: %s", d->err);
		ok = false;
	}
	/* a plain NO without a code may mean "exists" on older servers: SELECT decides */
	if (ok && f->subscribed)
		(void)imap_simple(d, NULL, NULL, "SUBSCRIBE %s", q.data);
	buf_free(&q);
	return ok && d->fail != IMAP_F_CLOSED;
}

/* The candidates at the source that are not yet at the destination. */
static bool plan_folder(struct mig_mail *m, struct mig_folder *f, struct imap *s, struct imap *d,
			struct keyset *todo)
{
	struct sel_ctx sc = { 0 }, dc = { 0 };
	struct keyset have = { 0 };
	struct buf q;
	uint32_t from = 1;

	buf_init(&q, 0);
	quote_name(&q, f->src);
	if (!imap_simple(s, on_select, &sc, "EXAMINE %s", q.data)) {
		folder_error(m, f, "the old provider cannot open this folder: %s", s->err);
		buf_free(&q);
		return false;
	}
	pthread_mutex_lock(&m->lock);
	f->uidvalidity = sc.uidvalidity;
	if (f->saved_uidvalidity == sc.uidvalidity && f->saved_uidvalidity != 0) {
		from = f->saved_last_uid + 1;
		if (f->last_uid < f->saved_last_uid)
			f->last_uid = f->saved_last_uid;
	}
	pthread_mutex_unlock(&m->lock);
	if (sc.exists == 0) {
		buf_free(&q);
		return true;
	}
	quote_name(&q, f->dst);
	if (!imap_simple(d, on_select, &dc, "EXAMINE %s", q.data)) {
		folder_error(m, f, "the destination cannot open the folder: %s", d->err);
		buf_free(&q);
		return false;
	}
	/* Message-IDs are needed to match against messages already there (and for Gmail's
	 * All Mail); into an empty folder, sizes alone plan the batches */
	if (!imap_simple(s, on_keys, todo, "UID FETCH %u:* %s", m->o.src.gmail ? 1 : from,
			 dc.exists > 0 || m->o.src.gmail ? KEY_ITEMS : "(UID RFC822.SIZE)")) {
		folder_error(m, f, "listing the messages failed: %s", s->err);
		buf_free(&q);
		return false;
	}
	/* "N:*" always returns the last message, even when its UID is below N */
	if (m->o.src.gmail && !f->all_mail)
		seen_add(m, todo);
	for (size_t i = 0; i < todo->n; i++) {
		if (todo->k[i].uid < from)
			todo->k[i].used = true;
		else if (f->all_mail && seen_has(m, &todo->k[i]))
			todo->k[i].used = true;	/* a labelled message: copied with its label */
	}
	if (dc.exists > 0 && !imap_simple(d, on_keys, &have, "UID FETCH 1:* " KEY_ITEMS)) {
		folder_error(m, f, "listing the destination's messages failed: %s", d->err);
		buf_free(&q);
		return false;
	}
	(void)imap_simple(d, NULL, NULL, "CLOSE");
	buf_free(&q);
	/* multiset difference: each destination message accounts for one source message */
	if (have.n > 1)
		qsort(have.k, have.n, sizeof(*have.k), key_cmp);
	for (size_t i = 0; i < todo->n; i++) {
		struct msgkey *k = &todo->k[i];
		size_t lo = 0, hi = have.n;

		if (k->used)
			continue;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (key_cmp(&have.k[mid], k) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < have.n && key_cmp(&have.k[lo], k) == 0; lo++) {
			if (!have.k[lo].used) {
				have.k[lo].used = k->used = true;
				pthread_mutex_lock(&m->lock);
				f->present++;
				pthread_mutex_unlock(&m->lock);
				break;
			}
		}
	}
	keys_free(&have);
	return true;
}

static int uid_order(const void *a, const void *b)
{
	const struct msgkey *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Copy one folder; false when the connections must be re-opened. */
static bool copy_folder(struct mig_mail *m, struct mig_folder *f, struct imap *s, struct imap *d)
{
	struct keyset all = { 0 };
	struct msgkey *todo;
	size_t n = 0, i = 0;
	bool multi = imap_has_cap(d, "MULTIAPPEND") && imap_has_cap(d, "LITERAL+");
	bool alive = true;
	char tag[16] = "";	/* the FETCH sent ahead for the next batch */

	if (f->error != NULL)
		return true;	/* the folder could not be created at the destination */
	if (!plan_folder(m, f, s, d, &all)) {
		keys_free(&all);
		return s->fail != IMAP_F_CLOSED && d->fail != IMAP_F_CLOSED;
	}
	todo = xcalloc(all.n + 1, sizeof(*todo));
	for (size_t k = 0; k < all.n; k++) {
		if (all.k[k].used)
			continue;
		if (all.k[k].size > m->o.max_message) {
			char why[128];

			snprintf(why, sizeof(why), "larger (%llu bytes) than the limit of %llu bytes",
				 (unsigned long long)all.k[k].size, (unsigned long long)m->o.max_message);
			note_failure(m, f, all.k[k].uid, why);
			continue;
		}
		todo[n++] = all.k[k];
	}
	if (n > 1)
		qsort(todo, n, sizeof(*todo), uid_order);
	pthread_mutex_lock(&m->lock);
	m->p.msgs_total += n;
	for (size_t k = 0; k < n; k++)
		m->p.bytes_total += todo[k].size;
	pthread_mutex_unlock(&m->lock);
	while (i < n && alive) {
		size_t cnt = batch_len(todo + i, n - i);
		size_t nn = i + cnt < n ? batch_len(todo + i + cnt, n - i - cnt) : 0;
		char next_tag[16], none[16];
		enum batch_rc rc;

		if (m->dest_full || m->stop)
			break;
		if (cnt == 0) {
			/* in UID order with the others, so the highest UID copied stays true;
			 * no FETCH was sent ahead for it (batch_len gave the batch before 0) */
			rc = stream_message(m, f, s, d, &todo[i++]);
			if (rc == BATCH_FULL)
				m->dest_full = true;
			else if (rc != BATCH_OK)
				alive = false;
			continue;
		}
		rc = copy_batch(m, f, s, d, todo + i, cnt, multi, tag, todo + i + cnt, nn, next_tag);
		snprintf(tag, sizeof(tag), "%s", next_tag);
		/* the FETCH sent ahead is of no use when this batch is to be done again */
		if (rc == BATCH_RETRY_SINGLY || rc == BATCH_FULL)
			alive = drop_fetch(s, tag);
		if (rc == BATCH_RETRY_SINGLY) {
			for (size_t k = 0; k < cnt && alive; k++) {
				rc = copy_batch(m, f, s, d, todo + i + k, 1, false, "", NULL, 0, none);
				alive = rc == BATCH_OK || rc == BATCH_FULL;
				if (rc == BATCH_FULL)
					m->dest_full = true;
			}
		} else if (rc == BATCH_FULL) {
			m->dest_full = true;
		} else if (rc != BATCH_OK) {
			alive = false;
		}
		i += cnt;
	}
	if (alive)
		alive = drop_fetch(s, tag);	/* another worker found the destination full */
	if (m->dest_full)
		folder_error(m, f, "the destination mailbox is full (%s). What to do: %s", d->err,
			     mig_mail_advice(IMAP_F_NO, "OVERQUOTA", false, NULL));
	else if (!alive)
		folder_error(m, f, "%s. What to do: %s", s->fail == IMAP_F_CLOSED ? s->err : d->err,
			     mig_mail_advice(IMAP_F_CLOSED, NULL, true, NULL));
	free(todo);
	keys_free(&all);
	return alive;
}

/* ---- --delete-source: verify at the destination, then expunge verified messages ---- */

struct digest {
	uint64_t size;
	unsigned char h[32];
	uint32_t uid;
	bool used;
};

struct digests {
	struct digest *d;
	size_t n;
};

static void on_digest(struct imap *im, const struct imap_resp *r, void *arg)
{
	struct digests *ds = arg;
	const struct imap_node *l = r->args.child, *body;
	struct digest x = { 0 };
	unsigned int hl = 0;

	if (strcmp(r->name, "FETCH") != 0 || l == NULL || l->type != IMAP_LIST ||
	    !imap_node_u32(imap_fetch_item(l, "UID"), &x.uid) ||
	    (body = imap_fetch_item(l, "BODY[]")) == NULL || body->type != IMAP_STRING)
		return;
	x.size = body->len;
	if (EVP_Digest(body->p, body->len, x.h, &hl, EVP_sha256(), NULL) != 1)
		fatalx("SHA-256 failed");
	ds->d = xreallocarray(ds->d, ds->n + 1, sizeof(*ds->d));
	ds->d[ds->n++] = x;
}

/* The SHA-256 of one large message, its body streamed (never held whole). */
static bool digest_streamed(struct imap *im, uint32_t uid, struct digests *ds)
{
	struct digest x = { .uid = uid };
	EVP_MD_CTX *ctx;
	char tag[16];
	const char *p;
	long got;
	bool ok;

	imap_cmd(im, tag, "UID FETCH %u (UID BODY.PEEK[])", uid);
	if (!imap_body_begin(im, tag, &x.size))
		return false;
	if (x.size == UINT64_MAX)
		return true;	/* expunged meanwhile */
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("SHA-256 failed");
	while ((got = imap_body_read(im, &p, STREAM_CHUNK)) > 0)
		if (EVP_DigestUpdate(ctx, p, (size_t)got) != 1)
			fatalx("SHA-256 failed");
	ok = got == 0 && EVP_DigestFinal_ex(ctx, x.h, NULL) == 1 && imap_body_end(im, tag);
	EVP_MD_CTX_free(ctx);
	if (ok) {
		ds->d = xreallocarray(ds->d, ds->n + 1, sizeof(*ds->d));
		ds->d[ds->n++] = x;
	}
	return ok;
}

/*
 * The size and SHA-256 of every message of the selected folder: small ones fetched in
 * batches, large ones (over STREAM_MIN) one by one with their bodies streamed.
 */
static bool digest_folder(struct imap *im, struct digests *ds)
{
	struct keyset ks = { 0 };
	struct msgkey *small;
	struct buf set;
	size_t ns = 0;
	bool ok = imap_simple(im, on_keys, &ks, "UID FETCH 1:* (UID RFC822.SIZE)");

	small = xcalloc(ks.n + 1, sizeof(*small));
	buf_init(&set, 0);
	if (ks.n > 1)
		qsort(ks.k, ks.n, sizeof(*ks.k), uid_order);
	for (size_t i = 0; i < ks.n && ok; i++) {
		if (ks.k[i].size > STREAM_MIN)
			ok = digest_streamed(im, ks.k[i].uid, ds);
		else
			small[ns++] = ks.k[i];
	}
	for (size_t i = 0; i < ns && ok; i += BATCH_MSGS) {
		uid_set(&set, small + i, ns - i < BATCH_MSGS ? ns - i : BATCH_MSGS);
		ok = imap_simple(im, on_digest, ds, "UID FETCH %s (UID BODY.PEEK[])", set.data);
	}
	buf_free(&set);
	free(small);
	keys_free(&ks);
	return ok;
}

static int digest_cmp(const void *a, const void *b)
{
	const struct digest *x = a, *y = b;

	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return memcmp(x->h, y->h, sizeof(x->h));
}

/*
 * Every source message whose size and SHA-256 are found at the destination (each destination
 * message vouching for one) is flagged \Deleted and expunged by UID; nothing else is touched.
 */
static void delete_verified(struct mig_mail *m, struct mig_folder *f, struct imap *s, struct imap *d)
{
	struct digests have = { 0 }, mine = { 0 };
	struct buf q, set;
	struct sel_ctx sc = { 0 }, dc = { 0 };
	size_t nver = 0;

	buf_init(&q, 0);
	buf_init(&set, 0);
	if (!imap_has_cap(s, "UIDPLUS")) {
		folder_error(m, f, "the old provider cannot expunge single messages (no UIDPLUS): "
			     "nothing was deleted there");
		goto out;
	}
	quote_name(&q, f->dst);
	if (!imap_simple(d, on_select, &dc, "EXAMINE %s", q.data) ||
	    (dc.exists > 0 && !digest_folder(d, &have))) {
		folder_error(m, f, "verifying at the destination failed, nothing deleted: %s", d->err);
		goto out;
	}
	(void)imap_simple(d, NULL, NULL, "CLOSE");
	quote_name(&q, f->src);
	if (!imap_simple(s, on_select, &sc, "SELECT %s", q.data) ||
	    (sc.exists > 0 && !digest_folder(s, &mine))) {
		folder_error(m, f, "reading the old folder for verification failed, nothing "
			     "deleted: %s", s->err);
		goto out;
	}
	if (have.n > 1)
		qsort(have.d, have.n, sizeof(*have.d), digest_cmp);
	for (size_t i = 0; i < mine.n; i++) {
		struct digest *hit = have.n ? bsearch(&mine.d[i], have.d, have.n, sizeof(*have.d),
						      digest_cmp) : NULL;

		if (hit == NULL)
			continue;
		while (hit > have.d && digest_cmp(hit - 1, &mine.d[i]) == 0)
			hit--;
		for (; hit < have.d + have.n && digest_cmp(hit, &mine.d[i]) == 0; hit++) {
			if (!hit->used) {
				hit->used = true;
				buf_addf(&set, "%s%u", set.len ? "," : "", mine.d[i].uid);
				nver++;
				break;
			}
		}
	}
	if (nver > 0 && (!imap_simple(s, NULL, NULL, "UID STORE %s +FLAGS.SILENT (\\Deleted)", set.data) ||
			 !imap_simple(s, NULL, NULL, "UID EXPUNGE %s", set.data)))
		folder_error(m, f, "deleting at the old provider failed: %s", s->err);
	else if (nver < mine.n)
		folder_error(m, f, "%zu messages were not found intact at the destination and were "
			     "kept at the old provider", mine.n - nver);
	(void)imap_simple(s, NULL, NULL, "CLOSE");
out:
	free(have.d);
	free(mine.d);
	buf_free(&q);
	buf_free(&set);
}

/* ---- workers ---- */

static struct mig_folder *next_folder(struct mig_mail *m)
{
	struct mig_folder *f = NULL;

	pthread_mutex_lock(&m->lock);
	while (m->next < m->nfolders && f == NULL && !m->stop) {
		struct mig_folder *c = &m->folders[m->next];

		/* All Mail (sorted last) starts when every other folder is done; another worker
		 * may have taken it meanwhile, so look at m->next again after waiting */
		if (c->all_mail && m->p.folders_done < m->p.folders_total - 1) {
			pthread_cond_wait(&m->cond, &m->lock);
			continue;
		}
		m->next++;
		if (!c->skip && !c->noselect)
			f = c;
	}
	pthread_mutex_unlock(&m->lock);
	return f;
}

static void folder_done(struct mig_mail *m, struct mig_folder *f)
{
	pthread_mutex_lock(&m->lock);
	f->finished = time(NULL);
	f->done = true;
	f->dirty = true;
	m->p.folders_done++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* A worker's pair of connections, opened while no other worker is opening its own. */
static bool open_pair_serial(struct mig_mail *m, struct imap *s, struct imap *d)
{
	bool ok;

	pthread_mutex_lock(&m->open_lock);
	ok = open_pair(m, s, d, false);
	pthread_mutex_unlock(&m->open_lock);
	return ok;
}

/* A failure worth another try: the connection was lost or not made, not refused. */
static bool transient(const struct imap *s, const struct imap *d)
{
	enum imap_fail f = s->fail != IMAP_F_NONE ? s->fail : d->fail;

	return f == IMAP_F_CLOSED || f == IMAP_F_CONNECT;
}

/* Wait before another attempt (1 s, then 2 s), cut short by mig_mail_stop. */
static void retry_pause(struct mig_mail *m, int attempt)
{
	for (int i = 0; i < attempt * 10 && !m->stop; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
}

static void clear_folder_error(struct mig_mail *m, struct mig_folder *f)
{
	pthread_mutex_lock(&m->lock);
	free(f->error);
	f->error = NULL;
	pthread_mutex_unlock(&m->lock);
}

static void *worker(void *arg)
{
	struct mig_mail *m = arg;
	struct imap s, d;
	bool open = false;
	struct mig_folder *f;

	while ((f = next_folder(m)) != NULL) {
		pthread_mutex_lock(&m->lock);
		f->started = time(NULL);
		pthread_mutex_unlock(&m->lock);
		/* a connection lost mid-folder (a server restarted, or one that dropped the
		 * session) is retried on fresh connections; the copy resumes where it was */
		for (int attempt = 1; attempt <= MIG_FOLDER_ATTEMPTS && !m->dest_full; attempt++) {
			if (attempt > 1) {
				clear_folder_error(m, f);
				retry_pause(m, attempt - 1);
			}
			if (!open && !(open = open_pair_serial(m, &s, &d))) {
				folder_error(m, f, "cannot reconnect: %s", s.fail ? s.err : d.err);
				if (transient(&s, &d))
					continue;
				break;
			}
			if (copy_folder(m, f, &s, &d)) {
				if (m->o.delete_source && f->error == NULL && f->failed == 0 &&
				    !m->dest_full)
					delete_verified(m, f, &s, &d);
				break;
			}
			imap_close(&s);
			imap_close(&d);
			open = false;
		}
		folder_done(m, f);
	}
	if (open) {
		imap_close(&s);
		imap_close(&d);
	}
	return NULL;
}

void mig_mail_stop(struct mig_mail *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = 1;
	pthread_cond_broadcast(&m->cond);	/* All Mail's worker waits for the others */
	pthread_mutex_unlock(&m->lock);
}

void mig_mail_start(struct mig_mail *m, pthread_t *threads, int *nthreads)
{
	int n = m->o.connections < 1 ? 1 : m->o.connections;

	if ((size_t)n > m->nfolders)
		n = m->nfolders > 0 ? (int)m->nfolders : 1;
	for (int i = 0; i < n; i++)
		if (pthread_create(&threads[i], NULL, worker, m) != 0)
			fatalx("cannot start a migration worker");
	*nthreads = n;
}

int mig_mail_wait(pthread_t *threads, int nthreads, long ns)
{
	struct timespec ts = { ns / 1000000000L, ns % 1000000000L };
	int running = 0;

	nanosleep(&ts, NULL);
	for (int i = 0; i < nthreads; i++)
		if (threads[i] != 0 && pthread_tryjoin_np(threads[i], NULL) == 0)
			threads[i] = 0;
	for (int i = 0; i < nthreads; i++)
		running += threads[i] != 0;
	return running;
}

void mig_mail_free(struct mig_mail *m)
{
	for (size_t i = 0; i < m->nfolders; i++) {
		free(m->folders[i].src);
		free(m->folders[i].dst);
		free(m->folders[i].display);
		free(m->folders[i].error);
		free(m->folders[i].failures);
	}
	free(m->folders);
	for (size_t i = 0; i < sizeof(m->dst_special) / sizeof(m->dst_special[0]); i++)
		free(m->dst_special[i]);
	free(m->fatal);
	if (m->ssl)
		SSL_CTX_free(m->ssl);
	if (m->seen != NULL) {
		for (size_t i = 0; i < m->seen->n; i++)
			free(m->seen->k[i].msgid);
		free(m->seen->k);
		free(m->seen);
	}
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->open_lock);
	pthread_mutex_destroy(&m->lock);
}
