/*
 * cli_migrate_contacts.c - "postwarden migrate contacts": the command line of the address
 * book copy (mig_contacts.c does the copying): its arguments, the credentials from a
 * terminal or --password-fd, the progress line and the summary.
 *
 * Nothing of the source (URL, user, password or token) is written anywhere: credentials
 * live in mig_cred's wiped memory, and the output reports counts only.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "migrate/mig_contacts.h"
#include "migrate/mig_cred.h"
#include "xmalloc.h"

#define MC_USAGE \
	"migrate contacts --from SOURCE [--from-url URL] [--from-user NAME] [--from-file FILE]\n" \
	"       [--password-fd N] [--oauth] [--to-url URL] --to-user NAME [--to-password-fd N]\n" \
	"       [--to-book NAME] [--allow-private] [--ca-file FILE] [--json]\n" \
	"  SOURCE: carddav, gmail, icloud, yahoo, aol, gmx, webde (CardDAV), outlook\n" \
	"          (Microsoft Graph, with an OAuth token), vcard, google-csv, outlook-csv (files)"

struct mc_opts {
	const struct mig_contacts_preset *preset;
	const char *from_url, *from_user, *from_file;
	int password_fd, to_password_fd;
	bool oauth, allow_private, json;
	const char *to_url, *to_user, *to_book, *ca_file;
};

struct mc_out {
	struct mig_contacts *c;
	bool json, tty;
};

static const struct pw_config *mc_config;	/* borrowed; NULL: none loaded */

void cli_migrate_contacts_use_config(const struct pw_config *cfg)
{
	mc_config = cfg;
}

/* ---- output --------------------------------------------------------------------------- */

/* After each batch, in the copying thread (this one): the counters under their lock. */
static void mc_progress(void *arg)
{
	struct mc_out *out = arg;
	struct mig_contacts *c = out->c;

	pthread_mutex_lock(&c->lock);
	if (out->json)
		printf("{\"event\":\"progress\",\"address_books\":%zu,\"cards\":%llu,"
		       "\"copied\":%llu,\"existing\":%llu,\"failed\":%llu}\n", c->nbooks,
		       (unsigned long long)c->seen, (unsigned long long)c->copied,
		       (unsigned long long)c->existing, (unsigned long long)c->failed);
	else if (out->tty)
		printf("\raddress books %zu  cards %llu  copied %llu  already there %llu  "
		       "failed %llu ", c->nbooks, (unsigned long long)c->seen,
		       (unsigned long long)c->copied, (unsigned long long)c->existing,
		       (unsigned long long)c->failed);
	pthread_mutex_unlock(&c->lock);
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

static void mc_summary(const struct mc_out *out, const char *fatal)
{
	const struct mig_contacts *c = out->c;

	if (out->json) {
		printf("{\"event\":\"summary\",\"address_books\":%zu,\"cards\":%llu,"
		       "\"copied\":%llu,\"existing\":%llu,\"failed\":%llu,\"not_copied\":[",
		       c->nbooks, (unsigned long long)c->seen, (unsigned long long)c->copied,
		       (unsigned long long)c->existing, (unsigned long long)c->failed);
		for (size_t i = 0; i < c->nreasons; i++) {
			printf("%s{\"reason\":", i ? "," : "");
			mc_json_str(c->reasons[i].text);
			printf(",\"count\":%zu}", c->reasons[i].count);
		}
		printf("],\"sync_collection_books\":%zu", c->synced_books);
		if (fatal) {
			printf(",\"error\":");
			mc_json_str(fatal);
		}
		printf("}\n");
	} else {
		if (out->tty)
			printf("\n");
		printf("address books: %zu, cards: %llu, copied: %llu, already there: %llu, "
		       "not copied: %llu\n", c->nbooks, (unsigned long long)c->seen,
		       (unsigned long long)c->copied, (unsigned long long)c->existing,
		       (unsigned long long)c->failed);
		for (size_t i = 0; i < c->nreasons; i++)
			printf("  not copied: %zu: %s\n", c->reasons[i].count, c->reasons[i].text);
	}
	if (fatal)
		fprintf(pw_stderr, "postwarden migrate contacts: %s\n", fatal);
	fflush(stdout);
}

/* ---- options -------------------------------------------------------------------------- */

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
			if ((o->preset = mig_contacts_preset(v)) == NULL)
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
	if (mig_contacts_is_file(o->preset))
		return o->from_file ? 0 : -1;
	if (o->from_url == NULL)
		o->from_url = o->preset->url;
	if (o->from_url == NULL)
		return -1;
	if (o->preset->kind == MIG_CONTACTS_CARDDAV && o->from_user == NULL &&
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

/* The two credentials (the destination's first, as the copy needs it first). */
static int mc_creds(const struct mc_opts *o, struct mig_cred **src, struct mig_cred **dst,
		    const char **err)
{
	bool bearer = o->oauth || o->preset->auth == CARDDAV_AUTH_BEARER;

	*src = NULL;
	if ((*dst = mc_cred(o->to_password_fd, "Password for the new address book: ", err)) == NULL)
		return -1;
	if (mig_contacts_is_file(o->preset))
		return 0;
	*src = mc_cred(o->password_fd, bearer ? "OAuth access token for the old address book: "
					      : "Password for the old address book: ", err);
	return *src ? 0 : -1;
}

int cli_migrate_contacts(int argc, char **argv)
{
	struct mc_opts o;
	struct mig_contacts c;
	struct mig_contacts_opts co;
	struct mc_out out = { .c = &c };
	struct mig_cred *src = NULL, *dst = NULL;
	const char *err = NULL;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", MC_USAGE);
		return 0;
	}
	if (mc_parse(argc, argv, &o) < 0)
		return cli_usage(MC_USAGE);
	out.json = o.json;
	out.tty = !o.json && isatty(STDOUT_FILENO);
	co = (struct mig_contacts_opts){ .preset = o.preset, .from_url = o.from_url,
		.from_user = o.from_user, .from_file = o.from_file, .oauth = o.oauth,
		.to_url = o.to_url, .to_user = o.to_user, .to_book = o.to_book,
		.allow_private = o.allow_private, .ca_file = o.ca_file,
		.progress = mc_progress, .progress_arg = &out };
	if (mc_creds(&o, &src, &dst, &err) < 0) {
		mig_contacts_init(&c, &co);
		mig_cred_free(dst);
		mc_summary(&out, err);
		mig_contacts_free(&c);
		return 1;
	}
	co.from_cred = src;
	co.to_cred = dst;
	mig_contacts_init(&c, &co);
	rc = mig_contacts_run(&c);
	/* the clients copied what they need into wiped headers */
	mig_cred_free(src);
	mig_cred_free(dst);
	mc_summary(&out, rc < 0 ? c.fatal : NULL);
	rc = rc < 0 || c.failed > 0 ? 1 : 0;
	mig_contacts_free(&c);
	return rc;
}
