/*
 * cli_migrate_contacts.c - "postwarden migrate contacts": copy a user's address books from
 * their old provider (CardDAV, or Microsoft Graph for Outlook.com/Office 365) or from an
 * exported file (vCard, Google or Outlook CSV) to the provider's CardDAV server.
 *
 * Cards read over CardDAV are written byte for byte under their own resource names with
 * If-None-Match: *, so a second run adds only what is missing. Nothing of the source (URL,
 * user, password or token) is written anywhere: credentials come from mig_cred (terminal or
 * --password-fd), live in wiped memory, and the output reports counts only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "http.h"
#include "migrate/carddav.h"
#include "migrate/contacts_csv.h"
#include "migrate/contacts_graph.h"
#include "migrate/mig_cred.h"
#include "migrate/vcard.h"
#include "xmalloc.h"

#define MC_USAGE \
	"migrate contacts --from SOURCE [--from-url URL] [--from-user NAME] [--from-file FILE]\n" \
	"       [--password-fd N] [--oauth] [--to-url URL] --to-user NAME [--to-password-fd N]\n" \
	"       [--to-book NAME] [--allow-private] [--ca-file FILE] [--json]\n" \
	"  SOURCE: carddav, gmail, icloud, yahoo, aol, gmx, webde (CardDAV), outlook\n" \
	"          (Microsoft Graph, with an OAuth token), vcard, google-csv, outlook-csv (files)"
#define MC_MAX_REASONS	16
#define MC_GRAPH_PAGES	10000

enum mc_kind { MC_CARDDAV, MC_GRAPH, MC_VCARD_FILE, MC_CSV_FILE };

struct mc_preset {
	const char *name;
	enum mc_kind kind;
	const char *url;	/* NULL: --from-url or --from-file needed */
	enum carddav_auth auth;
};

/* The providers' CardDAV and Graph endpoints; each may be overridden with --from-url. */
static const struct mc_preset mc_presets[] = {
	{ "carddav", MC_CARDDAV, NULL, CARDDAV_AUTH_BASIC },
	{ "gmail", MC_CARDDAV, "https://www.googleapis.com/.well-known/carddav",
	  CARDDAV_AUTH_BEARER },
	{ "icloud", MC_CARDDAV, "https://contacts.icloud.com/", CARDDAV_AUTH_BASIC },
	{ "yahoo", MC_CARDDAV, "https://carddav.address.yahoo.com/", CARDDAV_AUTH_BASIC },
	{ "aol", MC_CARDDAV, "https://carddav.aol.com/", CARDDAV_AUTH_BASIC },
	{ "gmx", MC_CARDDAV, "https://carddav.gmx.net/", CARDDAV_AUTH_BASIC },
	{ "webde", MC_CARDDAV, "https://carddav.web.de/", CARDDAV_AUTH_BASIC },
	{ "outlook", MC_GRAPH, "https://graph.microsoft.com/v1.0/me/contacts?$top=100",
	  CARDDAV_AUTH_BEARER },
	{ "vcard", MC_VCARD_FILE, NULL, CARDDAV_AUTH_NONE },
	{ "google-csv", MC_CSV_FILE, NULL, CARDDAV_AUTH_NONE },
	{ "outlook-csv", MC_CSV_FILE, NULL, CARDDAV_AUTH_NONE },
};

struct mc_opts {
	const struct mc_preset *preset;
	const char *from_url, *from_user, *from_file;
	int password_fd, to_password_fd;
	bool oauth, allow_private, json;
	const char *to_url, *to_user, *to_book, *ca_file;
};

struct mc_reason {
	char *text;
	size_t count;
};

struct mc_run {
	struct mc_opts o;
	struct carddav *dst;
	char *dst_home;
	size_t books, seen, copied, existing, failed;
	size_t synced_books;	/* listed by sync-collection */
	struct mc_reason reasons[MC_MAX_REASONS];
	size_t nreasons;
	bool tty;
};

static const struct pw_config *mc_config;	/* borrowed; NULL: none loaded */

void cli_migrate_contacts_use_config(const struct pw_config *cfg)
{
	mc_config = cfg;
}

/* ---- output --------------------------------------------------------------------------- */

static void mc_not_copied(struct mc_run *r, const char *why)
{
	r->failed++;
	for (size_t i = 0; i < r->nreasons; i++)
		if (strcmp(r->reasons[i].text, why) == 0) {
			r->reasons[i].count++;
			return;
		}
	if (r->nreasons < MC_MAX_REASONS) {
		r->reasons[r->nreasons].text = xstrdup(why);
		r->reasons[r->nreasons++].count = 1;
	} else {
		r->reasons[MC_MAX_REASONS - 1].count++;	/* the last one stands for the rest */
	}
}

static void mc_progress(struct mc_run *r)
{
	if (r->o.json)
		printf("{\"event\":\"progress\",\"address_books\":%zu,\"cards\":%zu,\"copied\":%zu,"
		       "\"existing\":%zu,\"failed\":%zu}\n", r->books, r->seen, r->copied,
		       r->existing, r->failed);
	else if (r->tty)
		printf("\raddress books %zu  cards %zu  copied %zu  already there %zu  failed %zu ",
		       r->books, r->seen, r->copied, r->existing, r->failed);
	fflush(stdout);
}

static void mc_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void mc_summary(struct mc_run *r, const char *fatal)
{
	if (r->o.json) {
		printf("{\"event\":\"summary\",\"address_books\":%zu,\"cards\":%zu,\"copied\":%zu,"
		       "\"existing\":%zu,\"failed\":%zu,\"not_copied\":[", r->books, r->seen,
		       r->copied, r->existing, r->failed);
		for (size_t i = 0; i < r->nreasons; i++) {
			printf("%s{\"reason\":", i ? "," : "");
			mc_json_str(r->reasons[i].text);
			printf(",\"count\":%zu}", r->reasons[i].count);
		}
		printf("],\"sync_collection_books\":%zu", r->synced_books);
		if (fatal) {
			printf(",\"error\":");
			mc_json_str(fatal);
		}
		printf("}\n");
	} else {
		if (r->tty)
			printf("\n");
		printf("address books: %zu, cards: %zu, copied: %zu, already there: %zu, "
		       "not copied: %zu\n", r->books, r->seen, r->copied, r->existing, r->failed);
		for (size_t i = 0; i < r->nreasons; i++)
			printf("  not copied: %zu: %s\n", r->reasons[i].count, r->reasons[i].text);
	}
	if (fatal)
		fprintf(pw_stderr, "postwarden migrate contacts: %s\n", fatal);
	fflush(stdout);
}

/* ---- options -------------------------------------------------------------------------- */

static const struct mc_preset *mc_preset(const char *name)
{
	for (size_t i = 0; i < sizeof(mc_presets) / sizeof(mc_presets[0]); i++)
		if (strcmp(mc_presets[i].name, name) == 0)
			return &mc_presets[i];
	return NULL;
}

static int mc_fd_arg(const char *arg, int *out)
{
	const char *err = NULL;

	*out = mig_cred_parse_fd(arg, &err);
	if (*out < 0) {
		fprintf(pw_stderr, "postwarden migrate contacts: --password-fd: %s\n", err);
		return -1;
	}
	return 0;
}

static int mc_parse(int argc, char **argv, struct mc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->password_fd = o->to_password_fd = -1;
	o->to_book = "contacts";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define VAL(name, field) if (strcmp(a, name) == 0) { if (!v) return -1; field = v; i++; continue; }
		VAL("--from-url", o->from_url);
		VAL("--from-user", o->from_user);
		VAL("--from-file", o->from_file);
		VAL("--to-url", o->to_url);
		VAL("--to-user", o->to_user);
		VAL("--to-book", o->to_book);
		VAL("--ca-file", o->ca_file);
#undef VAL
		if (strcmp(a, "--from") == 0 && v) {
			if ((o->preset = mc_preset(v)) == NULL)
				return -1;
			i++;
		} else if (strcmp(a, "--password-fd") == 0 && v) {
			if (mc_fd_arg(argv[++i], &o->password_fd) < 0)
				return -1;
		} else if (strcmp(a, "--to-password-fd") == 0 && v) {
			if (mc_fd_arg(argv[++i], &o->to_password_fd) < 0)
				return -1;
		} else if (strcmp(a, "--oauth") == 0) {
			o->oauth = true;
		} else if (strcmp(a, "--allow-private") == 0) {
			o->allow_private = true;
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
		} else {
			return -1;
		}
	}
	if (o->to_url == NULL && mc_config && *mc_config->migrate.carddav_destination)
		o->to_url = mc_config->migrate.carddav_destination;
	if (mc_config && mc_config->migrate.allow_private)
		o->allow_private = true;
	if (o->preset == NULL || o->to_url == NULL || o->to_user == NULL)
		return -1;
	if (o->preset->kind == MC_VCARD_FILE || o->preset->kind == MC_CSV_FILE)
		return o->from_file ? 0 : -1;
	if (o->from_url == NULL)
		o->from_url = o->preset->url;
	if (o->from_url == NULL)
		return -1;
	if (o->preset->kind == MC_CARDDAV && o->from_user == NULL &&
	    o->preset->auth == CARDDAV_AUTH_BASIC && !o->oauth)
		return -1;
	return 0;
}

/* A password or token from the descriptor, else from the terminal. */
static struct mig_cred *mc_cred(int fd, const char *prompt, const char **err)
{
	if (fd >= 0)
		return mig_cred_from_fd(fd, err);
	return mig_cred_from_tty(prompt, err);
}

/* ---- copying -------------------------------------------------------------------------- */

/* A resource name taken over from the source when it is a plain path segment. */
static bool mc_segment_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@%~+=", *s))
			return false;
	return true;
}

/*
 * Name one card for the destination book (name NULL or not a plain segment: made from the
 * card); false, with the reason counted, when it is not a single vCard.
 */
static bool mc_prepare(struct mc_run *r, const char *book, const char *name, const char *card,
		       size_t len, struct carddav_put_item *it)
{
	struct vcard_list one;
	const char *err = NULL;
	char *made = NULL;

	r->seen++;
	if (vcard_split(card, len, &one, &err) < 0 || one.n != 1) {
		if (err == NULL)
			vcard_list_free(&one);
		mc_not_copied(r, "not a single vCard");
		return false;
	}
	vcard_list_free(&one);
	if (name == NULL || !mc_segment_ok(name))
		name = made = vcard_resource_name(card, len);
	memset(it, 0, sizeof(*it));
	it->url = xasprintf("%s%s", book, name);
	it->card = card;
	it->len = len;
	free(made);
	return true;
}

/* Write the prepared cards and count what happened to each. */
static void mc_put_items(struct mc_run *r, struct carddav_put_item *items, size_t n)
{
	char why[96];

	carddav_put_many(r->dst, items, n);
	for (size_t i = 0; i < n; i++) {
		switch (items[i].res) {
		case CARDDAV_PUT_CREATED:
			r->copied++;
			break;
		case CARDDAV_PUT_EXISTS:
			r->existing++;
			break;
		case CARDDAV_PUT_FAILED:
			if (items[i].status > 0)
				snprintf(why, sizeof(why), "the destination refused it (HTTP %ld)",
					 items[i].status);
			else
				snprintf(why, sizeof(why), "the destination did not answer");
			mc_not_copied(r, why);
			break;
		}
		free(items[i].url);
	}
}

/* The destination address book called name (created when missing); NULL after reporting. */
static char *mc_dst_book(struct mc_run *r, const char *name, const char *displayname)
{
	char *url = xasprintf("%s%s%s/", r->dst_home,
			      r->dst_home[strlen(r->dst_home) - 1] == '/' ? "" : "/", name);

	if (carddav_make_book(r->dst, url, displayname) < 0) {
		free(url);
		return NULL;
	}
	return url;
}

/* One batch of a source book: multiget, then a PUT per card. */
static int mc_batch(struct mc_run *r, struct carddav *src, const char *book, char **urls,
		    size_t n, const char *dst_book)
{
	struct dav_ms ms;
	struct carddav_put_item *items;
	size_t k = 0;

	if (carddav_multiget(src, book, urls, n, &ms) < 0)
		return -1;
	items = xcalloc(ms.n ? ms.n : 1, sizeof(*items));
	for (size_t i = 0; i < ms.n; i++) {
		struct dav_resp *x = &ms.resp[i];
		char *seg;

		if (x->address_data == NULL) {
			r->seen++;
			mc_not_copied(r, "the source sent no data for it");
			continue;
		}
		seg = carddav_last_segment(x->href);
		if (mc_prepare(r, dst_book, seg, x->address_data, strlen(x->address_data),
			       &items[k]))
			k++;
		free(seg);
	}
	mc_put_items(r, items, k);
	free(items);
	dav_ms_free(&ms);
	return 0;
}

static int mc_copy_book(struct mc_run *r, struct carddav *src, const struct carddav_book *b)
{
	char **urls = NULL, *dst_book;
	size_t n = 0;
	bool synced = false;
	int rc = 0;

	if (!mc_segment_ok(b->name)) {
		mc_not_copied(r, "an address book name that is not a plain path segment");
		return 0;
	}
	r->books++;
	dst_book = mc_dst_book(r, b->name, b->displayname);
	if (dst_book == NULL)
		return -1;
	if (carddav_list_cards(src, b, &urls, &n, &synced) < 0) {
		free(dst_book);
		return -2;
	}
	r->synced_books += synced;
	for (size_t i = 0; i < n && rc == 0; i += CARDDAV_BATCH) {
		size_t k = n - i < CARDDAV_BATCH ? n - i : CARDDAV_BATCH;

		if (mc_batch(r, src, b->url, urls + i, k, dst_book) < 0)
			rc = -2;
		mc_progress(r);
	}
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
	free(dst_book);
	return rc;
}

/* "the new address book: TEXT" for a failure at the destination (a static buffer). */
static const char *mc_dst_failure(const char *text)
{
	static char msg[512];

	snprintf(msg, sizeof(msg), "the new address book: %s", text);
	return msg;
}

static int mc_from_carddav(struct mc_run *r, struct carddav *src, const char **fatal)
{
	struct carddav_books books;
	char *home = NULL;
	int rc = 0;

	if (carddav_discover(src, r->o.from_url, &home) < 0 ||
	    carddav_list_books(src, home, &books) < 0) {
		free(home);
		*fatal = carddav_error(src);
		return -1;
	}
	free(home);
	if (books.n == 0) {
		carddav_books_free(&books);
		*fatal = "the source account has no address book";
		return -1;
	}
	for (size_t i = 0; i < books.n && rc == 0; i++) {
		int brc = mc_copy_book(r, src, &books.b[i]);

		if (brc == -1) {
			*fatal = mc_dst_failure(carddav_error(r->dst));
			rc = -1;
		} else if (brc == -2) {
			*fatal = carddav_error(src);
			rc = -1;
		}
	}
	carddav_books_free(&books);
	return rc;
}

/* Write a list of made cards into the --to-book address book. */
static int mc_put_list(struct mc_run *r, const struct vcard_list *l, const char **fatal)
{
	char *book = mc_dst_book(r, r->o.to_book, NULL);

	if (book == NULL) {
		*fatal = mc_dst_failure(carddav_error(r->dst));
		return -1;
	}
	r->books = 1;
	for (size_t i = 0; i < l->n; i += CARDDAV_BATCH) {
		size_t n = l->n - i < CARDDAV_BATCH ? l->n - i : CARDDAV_BATCH, k = 0;
		struct carddav_put_item items[CARDDAV_BATCH];

		for (size_t j = 0; j < n; j++)
			if (mc_prepare(r, book, NULL, l->card[i + j], l->len[i + j], &items[k]))
				k++;
		mc_put_items(r, items, k);
		mc_progress(r);
	}
	free(book);
	return 0;
}

/* Graph pages, @odata.nextLink after @odata.nextLink, all on the first URL's origin. */
static int mc_from_graph(struct mc_run *r, struct carddav *src, const char **fatal)
{
	static char msg[160];
	struct vcard_list all = { 0 };
	char *url = xstrdup(r->o.from_url), *origin = carddav_origin(r->o.from_url);
	size_t skipped = 0;
	int rc = -1;

	for (int page = 0; url && page < MC_GRAPH_PAGES; page++) {
		struct http_response *resp = carddav_get(src, url, GRAPH_PAGE_MAX);
		char *next = NULL, *norigin;
		const char *err = NULL;

		free(url);
		url = NULL;
		if (resp == NULL) {
			*fatal = carddav_error(src);
			goto out;
		}
		if (resp->status != 200) {
			snprintf(msg, sizeof(msg), "%s (HTTP %ld)", resp->status == 401 ?
				 "Microsoft Graph refused the token: sign in again for a fresh one"
				 : "Microsoft Graph did not give the contacts", resp->status);
			*fatal = msg;
			http_response_free(resp);
			goto out;
		}
		if (contacts_graph_page(resp->body, resp->len, &all, &next, &skipped, &err) < 0) {
			snprintf(msg, sizeof(msg), "Microsoft Graph's answer: %s", err);
			*fatal = msg;
			http_response_free(resp);
			goto out;
		}
		http_response_free(resp);
		norigin = next ? carddav_origin(next) : NULL;
		if (next && (origin == NULL || norigin == NULL || strcmp(origin, norigin) != 0)) {
			free(norigin);
			free(next);
			*fatal = "Microsoft Graph's next page is on another host: not followed";
			goto out;
		}
		free(norigin);
		url = next;
	}
	for (size_t i = 0; i < skipped; i++) {
		r->seen++;
		mc_not_copied(r, "a contact with no name, address or number");
	}
	rc = mc_put_list(r, &all, fatal);
out:
	free(url);
	free(origin);
	vcard_list_free(&all);
	return rc;
}

/* Read a whole file, at most max bytes. */
static char *mc_read_file(const char *path, size_t max, size_t *len, const char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf b;
	char chunk[65536];
	ssize_t n;

	if (fd < 0) {
		*err = "cannot open the file";
		return NULL;
	}
	buf_init(&b, max);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || buf_add(&b, chunk, (size_t)n) < 0) {
			*err = n < 0 ? "cannot read the file" : "the file is too large";
			close(fd);
			buf_free(&b);
			return NULL;
		}
	}
	close(fd);
	return buf_release(&b, len);
}

static int mc_from_file(struct mc_run *r, const char **fatal)
{
	static char msg[160];
	struct vcard_list l = { 0 };
	size_t len = 0, skipped = 0;
	const char *err = NULL;
	bool csv = r->o.preset->kind == MC_CSV_FILE;
	char *text = mc_read_file(r->o.from_file, csv ? CSV_FILE_MAX : VCARD_FILE_MAX, &len, &err);
	int rc;

	if (text == NULL) {
		*fatal = err;
		return -1;
	}
	rc = csv ? contacts_csv_to_vcards(text, len, &l, &skipped, &err)
		 : vcard_split(text, len, &l, &err);
	free(text);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "the file is not usable: %s", err);
		*fatal = msg;
		vcard_list_free(&l);
		return -1;
	}
	for (size_t i = 0; i < skipped; i++) {
		r->seen++;
		mc_not_copied(r, "a row with no name, address or number");
	}
	rc = mc_put_list(r, &l, fatal);
	vcard_list_free(&l);
	return rc;
}

/* The source side: its client (with credentials) and the copy. */
static int mc_source(struct mc_run *r, const char **fatal)
{
	const struct mc_preset *p = r->o.preset;
	struct carddav_opts so = { .allow_private = r->o.allow_private, .ca_file = r->o.ca_file };
	struct mig_cred *cred;
	struct carddav *src;
	const char *err = NULL;
	int rc;

	if (p->kind == MC_VCARD_FILE || p->kind == MC_CSV_FILE)
		return mc_from_file(r, fatal);
	so.auth = r->o.oauth ? CARDDAV_AUTH_BEARER : p->auth;
	cred = mc_cred(r->o.password_fd, so.auth == CARDDAV_AUTH_BEARER ?
		       "OAuth access token for the old address book: " :
		       "Password for the old address book: ", &err);
	if (cred == NULL) {
		*fatal = err;
		return -1;
	}
	so.user = r->o.from_user;
	so.cred = cred;
	src = carddav_new(&so, &err);
	mig_cred_free(cred);	/* the client keeps only its wiped header */
	if (src == NULL) {
		*fatal = err;
		return -1;
	}
	rc = p->kind == MC_GRAPH ? mc_from_graph(r, src, fatal) : mc_from_carddav(r, src, fatal);
	if (rc < 0 && *fatal && strncmp(*fatal, "the new address book", 20) != 0) {
		static char msg[512];

		snprintf(msg, sizeof(msg), "the old address book: %s", *fatal);
		*fatal = msg;
	}
	carddav_free(src);
	return rc;
}

static int mc_destination(struct mc_run *r, const char **fatal)
{
	struct carddav_opts dopt = { .auth = CARDDAV_AUTH_BASIC, .user = r->o.to_user,
				     .allow_private = r->o.allow_private,
				     .ca_file = r->o.ca_file };
	struct mig_cred *cred;
	const char *err = NULL;

	cred = mc_cred(r->o.to_password_fd, "Password for the new address book: ", &err);
	if (cred == NULL) {
		*fatal = err;
		return -1;
	}
	dopt.cred = cred;
	r->dst = carddav_new(&dopt, &err);
	mig_cred_free(cred);
	if (r->dst == NULL) {
		*fatal = err;
		return -1;
	}
	if (carddav_discover(r->dst, r->o.to_url, &r->dst_home) < 0) {
		*fatal = mc_dst_failure(carddav_error(r->dst));
		return -1;
	}
	return 0;
}

int cli_migrate_contacts(int argc, char **argv)
{
	struct mc_run r;
	const char *fatal = NULL;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", MC_USAGE);
		return 0;
	}
	memset(&r, 0, sizeof(r));
	if (mc_parse(argc, argv, &r.o) < 0)
		return cli_usage(MC_USAGE);
	r.tty = !r.o.json && isatty(STDOUT_FILENO);
	rc = mc_destination(&r, &fatal);
	if (rc == 0)
		rc = mc_source(&r, &fatal);
	mc_summary(&r, rc < 0 ? fatal : NULL);
	carddav_free(r.dst);
	free(r.dst_home);
	for (size_t i = 0; i < r.nreasons; i++)
		free(r.reasons[i].text);
	return rc < 0 || r.failed > 0 ? 1 : 0;
}
