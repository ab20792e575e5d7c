/*
 * keydir_file.c - what the key directory writes to disk: the zone file fragment (when no
 * DNS server takes updates) and the Web Key Directory tree; see keydir.h.
 *
 * Every file is replaced atomically (temporary file, fsync, rename), so a web server or a
 * name server reloading at any moment sees the old or the new version, never a mix.
 * WKD layout (advanced method, the tree is the document root of openpgpkey.<domain>):
 *   <wkd_dir>/.well-known/openpgpkey/<domain>/hu/<z-base-32 hash>
 *   <wkd_dir>/.well-known/openpgpkey/<domain>/policy   (empty; clients require it)
 */
#include "keydir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#define WKD_PREFIX ".well-known/openpgpkey"
#define WKD_MAX_FILE (16 * 1024 * 1024)

/* mkdir -p for the directory part of path. */
static int file_mkdirs(const char *path, char **err)
{
	char *p = xstrdup(path);

	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			*err = xasprintf("cannot create directory %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

int keydir_file_write(const char *path, const void *data, size_t len, char **err)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	const uint8_t *p = data;
	int fd;

	if (file_mkdirs(path, err) < 0) {
		free(tmp);
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		*err = xasprintf("cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		p += w;
		len -= (size_t)w;
	}
	/* Readable by the web server and the name server, which may run as other users. */
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	free(tmp);
	return 0;
fail:
	*err = xasprintf("cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

uint8_t *keydir_file_read(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	uint8_t *data;
	size_t got = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > max) {
		close(fd);
		return NULL;
	}
	data = xmalloc((size_t)sb.st_size + 1);
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, data + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	data[got] = '\0';
	*len = got;
	return data;
}

/* One zone file line: "<owner>. <ttl> IN OPENPGPKEY <base64>" / "SMIMEA 3 0 0 <hex>". */
static void file_zone_line(struct buf *b, const char *owner, int64_t ttl, const struct keydir_key *k)
{
	if (k->rrtype == KEYDIR_RR_OPENPGPKEY) {
		char *b64 = xmalloc(4 * ((k->len + 2) / 3) + 1);
		EVP_EncodeBlock((unsigned char *)b64, k->data, (int)k->len);
		buf_addf(b, "%s. %lld IN OPENPGPKEY %s\n", owner, (long long)ttl, b64);
		free(b64);
	} else {
		buf_addf(b, "%s. %lld IN SMIMEA 3 0 0 ", owner, (long long)ttl);
		for (size_t i = 0; i < k->len; i++)
			buf_addf(b, "%02X", k->data[i]);
		buf_adds(b, "\n");
	}
}

/* Records sorted by owner so that the file is stable and diffs stay small. */
struct zone_line {
	const char *owner;
	const struct keydir_key *key;
};

static int file_zone_line_cmp(const void *a, const void *b)
{
	const struct zone_line *x = a, *y = b;
	int c = strcmp(x->owner, y->owner);

	if (c == 0)
		c = (int)x->key->rrtype - (int)y->key->rrtype;
	if (c == 0)
		c = x->key->id < y->key->id ? -1 : x->key->id > y->key->id;
	return c;
}

int keydir_file_zone(struct keydir *kd, bool *changed, char **err)
{
	char *path = keydir_zone_file(kd->cfg);
	size_t n, nl = 0, oldlen = 0;
	struct keydir_key **keys = keydir_store_list(kd->db, NULL, &n);
	struct zone_line *lines = xcalloc(2 * n + 1, sizeof(*lines));
	uint8_t *old;
	struct buf b;
	int rc = 0;

	buf_init(&b, 0);
	buf_adds(&b, "; OPENPGPKEY and SMIMEA records of the postwarden key directory.\n"
		     "; Written by postwarden on every change: do not edit. Include it in the zone\n"
		     "; with $INCLUDE; the names are absolute.\n");
	for (size_t i = 0; i < n; i++) {
		lines[nl++] = (struct zone_line){ keys[i]->owner, keys[i] };
		if (*keys[i]->owner_lc)
			lines[nl++] = (struct zone_line){ keys[i]->owner_lc, keys[i] };
	}
	qsort(lines, nl, sizeof(*lines), file_zone_line_cmp);
	for (size_t i = 0; i < nl; i++) {
		/* The same key under two spellings of one local-part: one record. */
		if (i > 0 && strcmp(lines[i].owner, lines[i - 1].owner) == 0 &&
		    lines[i].key->len == lines[i - 1].key->len &&
		    memcmp(lines[i].key->data, lines[i - 1].key->data, lines[i].key->len) == 0)
			continue;
		file_zone_line(&b, lines[i].owner, kd->cfg->keydir.ttl, lines[i].key);
	}
	old = keydir_file_read(path, SIZE_MAX / 2, &oldlen);
	*changed = old == NULL || oldlen != b.len || memcmp(old, b.data, b.len) != 0;
	if (*changed)
		rc = keydir_file_write(path, b.data, b.len, err);
	free(old);
	buf_free(&b);
	free(lines);
	keydir_key_list_free(keys, n);
	free(path);
	return rc;
}

/* Path of a WKD file "domain/hash", or of the policy file with hash NULL (caller frees). */
static char *file_wkd_path(struct keydir *kd, const char *domain, const char *hash)
{
	char *root = keydir_wkd_dir(kd->cfg);
	char *p = hash ? xasprintf("%s/" WKD_PREFIX "/%s/hu/%s", root, domain, hash)
		       : xasprintf("%s/" WKD_PREFIX "/%s/policy", root, domain);

	free(root);
	return p;
}

/* Names that could climb out of the tree never become paths. */
static bool file_wkd_safe(const char *s)
{
	return *s && *s != '.' && strchr(s, '/') == NULL && strlen(s) < 256;
}

/* Create the domain's (empty) policy file when missing; *created. */
static int file_wkd_policy(struct keydir *kd, const char *domain, bool *created, char **err)
{
	char *path = file_wkd_path(kd, domain, NULL);
	int rc = 0;

	*created = access(path, F_OK) != 0;
	if (*created)
		rc = keydir_file_write(path, "", 0, err);
	free(path);
	return rc;
}

int keydir_file_wkd(struct keydir *kd, const char *domain, const char *hash, const char **action,
		    char **err)
{
	char *path;
	size_t len = 0, oldlen = 0;
	uint8_t *data, *old;
	bool created;
	int rc = 0;

	*action = NULL;
	if (!file_wkd_safe(domain) || !file_wkd_safe(hash)) {
		*err = xasprintf("unusable WKD name %s/%s", domain, hash);
		return -1;
	}
	path = file_wkd_path(kd, domain, hash);
	data = keydir_store_wkd(kd->db, domain, hash, &len);
	if (data == NULL) {
		if (unlink(path) == 0)
			*action = "delete";
		else if (errno != ENOENT) {
			*err = xasprintf("cannot remove %s: %s", path, strerror(errno));
			rc = -1;
		}
	} else {
		old = keydir_file_read(path, WKD_MAX_FILE, &oldlen);
		if (old == NULL || oldlen != len || memcmp(old, data, len) != 0) {
			rc = keydir_file_write(path, data, len, err);
			if (rc == 0)
				*action = "write";
		}
		free(old);
		if (rc == 0)
			rc = file_wkd_policy(kd, domain, &created, err);
	}
	free(data);
	free(path);
	return rc;
}

/* The (domain, hash) pairs the store publishes. */
static char **file_wkd_wanted(struct db *db, size_t *n)
{
	struct db_stmt *st = db_prepare(db, "SELECT DISTINCT wkd_domain || '/' || wkd_hash FROM"
					  " keydir_keys WHERE wkd_hash <> '' ORDER BY 1");
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	while (db_step_row(db, st)) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[(*n)++] = xstrdup(db_col_text(st, 0));
	}
	db_finalize(st);
	return v;
}

static bool file_wkd_in(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Delete hu/ files of one domain directory that the store does not publish. */
static int file_wkd_prune(struct keydir *kd, const char *domain, char **wanted, size_t nwanted,
			  struct keydir_report *rep)
{
	char *root = keydir_wkd_dir(kd->cfg);
	char *hu = xasprintf("%s/" WKD_PREFIX "/%s/hu", root, domain);
	DIR *d = opendir(hu);
	struct dirent *e;
	int rc = 0;

	free(root);
	if (d == NULL) {
		free(hu);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		char *name, *path;

		if (e->d_name[0] == '.')
			continue;
		name = xasprintf("%s/%s", domain, e->d_name);
		path = xasprintf("%s/%s", hu, e->d_name);
		if (!file_wkd_in(wanted, nwanted, name)) {
			if (unlink(path) == 0) {
				keydir_report_add(rep, "delete", "wkd", name, "WKD");
			} else {
				rc = -1;
				if (!rep->error)
					rep->error = xasprintf("cannot remove %s: %s", path,
							       strerror(errno));
			}
		}
		free(name);
		free(path);
	}
	closedir(d);
	free(hu);
	return rc;
}

int keydir_file_wkd_sync(struct keydir *kd, struct keydir_report *rep)
{
	size_t n;
	char **wanted = file_wkd_wanted(kd->db, &n);
	char *root = keydir_wkd_dir(kd->cfg);
	char *top = xasprintf("%s/" WKD_PREFIX, root);
	DIR *d = opendir(top);
	struct dirent *e;
	int rc = 0;

	if (d != NULL) {
		while ((e = readdir(d)) != NULL)
			if (file_wkd_safe(e->d_name) &&
			    file_wkd_prune(kd, e->d_name, wanted, n, rep) < 0)
				rc = -1;
		closedir(d);
	}
	for (size_t i = 0; i < n; i++) {
		char *slash = strchr(wanted[i], '/'), *err = NULL;
		const char *action;
		bool created = false;

		if (slash == NULL)
			continue;
		*slash = '\0';
		if (keydir_file_wkd(kd, wanted[i], slash + 1, &action, &err) < 0 ||
		    file_wkd_policy(kd, wanted[i], &created, &err) < 0) {
			rc = -1;
			if (!rep->error)
				rep->error = err;
			else
				free(err);
		}
		*slash = '/';
		if (action)
			keydir_report_add(rep, action, "wkd", wanted[i], "WKD");
		if (created) {
			char *pol = xasprintf("%.*s/policy", (int)(slash - wanted[i]), wanted[i]);
			keydir_report_add(rep, "write", "wkd", pol, "policy");
			free(pol);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(wanted[i]);
	free(wanted);
	free(top);
	free(root);
	return rc;
}
