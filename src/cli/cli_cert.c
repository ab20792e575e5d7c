/*
 * cli_cert.c - "postwarden cert": the records and fingerprints that let others check the
 * provider's certificates. Prints zone-file lines (tlsa, caa) or the forms users compare
 * (fingerprints); it publishes nothing itself, so it needs no configuration or database.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/asn1.h>

#include "cli.h"
#include "log.h"
#include "ctmon/posture.h"
#include "strutil.h"
#include "xmalloc.h"

static const char cert_usage[] =
	"cert tlsa CERT [NEXT] [--port N] [--host NAME]\n"
	"       postwarden cert caa DOMAIN --ca CA [--ca CA]... [--account URI] [--methods LIST]"
	" [--iodef URL] [--wildcard]\n"
	"       postwarden cert fingerprints [--json] CERT...";

#define CERT_MAX_CAS 8

/* The value of "--name VALUE" at argv[*i], advancing *i; NULL when it is missing. */
static const char *cert_opt_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

/* A certificate's notAfter as "2027-03-01". */
static void cert_not_after(X509 *x, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(buf, len, "%Y-%m-%d", &tm);
	else
		snprintf(buf, len, "unknown");
}

/* One TLSA line for key; ca: the key of a CA (usage 2) rather than of the server (3). */
static void cert_print_tlsa(const char *owner, EVP_PKEY *key, bool ca)
{
	char hex[65];

	posture_spki_sha256_hex(key, hex);
	printf("%s IN TLSA %d 1 1 %s\n", owner, ca ? 2 : 3, hex);
}

/* The owner name _PORT._tcp.HOST. for the first certificate of chain (or --host). */
static char *cert_tlsa_owner(const struct posture_chain *chain, const char *host,
			     const char *port, char **err)
{
	char *h = host ? xstrdup(host) : posture_cert_host(chain->certs[0]), *owner;

	if (h == NULL) {
		*err = xstrdup("the certificate names no host (no DNS name, no CN): give --host");
		return NULL;
	}
	if (h[0] == '*' && h[1] == '.') {
		*err = xasprintf("the certificate is for %s: give the server's name with --host", h);
		free(h);
		return NULL;
	}
	if (!hostname_valid(h)) {
		*err = xasprintf("\"%s\" is not a host name", h);
		free(h);
		return NULL;
	}
	owner = xasprintf("_%s._tcp.%s.", port, str_lower(h));
	free(h);
	return owner;
}

/* "cert tlsa": the current certificate's key (and its issuer's), then the next key. */
static int cert_tlsa(int argc, char **argv)
{
	const char *files[2] = { NULL, NULL }, *host = NULL, *port = "25";
	struct posture_chain chain;
	EVP_PKEY *key, *next = NULL;
	char *owner, *err = NULL, date[32];
	size_t nfiles = 0;
	uint64_t portnum;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && (port = cert_opt_value(argc, argv, &i)))
			continue;
		if (strcmp(argv[i], "--host") == 0 && (host = cert_opt_value(argc, argv, &i)))
			continue;
		if (argv[i][0] == '-' || nfiles == 2)
			return cli_usage(cert_usage);
		files[nfiles++] = argv[i];
	}
	if (nfiles == 0 || port == NULL || !parse_uint(port, 1, 65535, &portnum))
		return cli_usage(cert_usage);
	if (!posture_read_chain(files[0], &chain, &err))
		goto fail;
	if (nfiles == 2 && (next = posture_read_public_key(files[1], &err)) == NULL) {
		posture_chain_free(&chain);
		goto fail;
	}
	if ((owner = cert_tlsa_owner(&chain, host, port, &err)) == NULL) {
		posture_chain_free(&chain);
		EVP_PKEY_free(next);
		goto fail;
	}
	if ((key = X509_get0_pubkey(chain.certs[0])) == NULL) {
		err = xasprintf("%s: the certificate's public key is of a kind this OpenSSL "
				"cannot read", files[0]);
		free(owner);
		posture_chain_free(&chain);
		EVP_PKEY_free(next);
		goto fail;
	}
	cert_not_after(chain.certs[0], date, sizeof(date));
	printf("; current key (%s, valid until %s)\n", files[0], date);
	cert_print_tlsa(owner, key, posture_is_ca(chain.certs[0]));
	for (size_t i = 1; i < chain.n; i++) {
		if (!posture_is_ca(chain.certs[i]) || X509_get0_pubkey(chain.certs[i]) == NULL)
			continue;
		printf("; issuing CA's key (%s, certificate %zu): DANE-TA, matches while the "
		       "server sends this CA in its chain\n", files[0], i + 1);
		cert_print_tlsa(owner, X509_get0_pubkey(chain.certs[i]), true);
	}
	if (next != NULL) {
		printf("; next key (%s): publish it now, at least two TTLs before the server "
		       "uses it (RFC 7671 8.1), and remove the current one after the change\n",
		       files[1]);
		cert_print_tlsa(owner, next, false);
	}
	free(owner);
	posture_chain_free(&chain);
	EVP_PKEY_free(next);
	return 0;
fail:
	fprintf(pw_stderr, "postwarden: %s\n", err);
	free(err);
	return 1;
}

/* "cert caa": the CAA records that allow the named CAs and nobody else. */
static int cert_caa(int argc, char **argv)
{
	const char *cas[CERT_MAX_CAS];
	struct posture_caa c = { .cas = cas };
	char *out, *err = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--wildcard") == 0)
			c.wildcard = true;
		else if (strcmp(a, "--ca") == 0 && c.ncas < CERT_MAX_CAS &&
			 (cas[c.ncas] = cert_opt_value(argc, argv, &i)))
			c.ncas++;
		else if (strcmp(a, "--account") == 0 && (c.account = cert_opt_value(argc, argv, &i)))
			continue;
		else if (strcmp(a, "--methods") == 0 && (c.methods = cert_opt_value(argc, argv, &i)))
			continue;
		else if (strcmp(a, "--iodef") == 0 && (c.iodef = cert_opt_value(argc, argv, &i)))
			continue;
		else if (a[0] != '-' && c.domain == NULL)
			c.domain = a;
		else
			return cli_usage(cert_usage);
	}
	if (c.domain == NULL)
		return cli_usage(cert_usage);
	if ((out = posture_caa_records(&c, &err)) == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return 1;
	}
	fputs(out, stdout);
	free(out);
	return 0;
}

/* The fingerprints of one certificate, as JSON. */
static json_t *cert_fingerprint_json(const char *file, X509 *x)
{
	char subject[512], issuer[512], date[32], fp[97], hex[65], b64[45], *host;
	EVP_PKEY *key = X509_get0_pubkey(x);
	json_t *o;

	X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
	X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
	cert_not_after(x, date, sizeof(date));
	posture_cert_sha256_colons(x, fp);
	hex[0] = b64[0] = '\0';	/* a key of a kind this OpenSSL cannot read */
	if (key != NULL) {
		posture_spki_sha256_hex(key, hex);
		posture_spki_sha256_b64(key, b64);
	}
	host = posture_cert_host(x);
	o = json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:s}", "file", file, "host", host,
		      "subject", subject, "issuer", issuer, "not_after", date,
		      "certificate_sha256", fp, "public_key_sha256", hex,
		      "public_key_sha256_base64", b64);
	free(host);
	if (o == NULL)
		fatalx("cannot encode a certificate's fingerprints");
	return o;
}

static void cert_fingerprint_print(json_t *o)
{
	printf("%s\n  subject:             %s\n  issuer:              %s\n"
	       "  valid until:         %s\n  certificate SHA-256: %s\n"
	       "  public key SHA-256:  %s\n  public key (base64): %s\n",
	       json_string_value(json_object_get(o, "file")),
	       json_string_value(json_object_get(o, "subject")),
	       json_string_value(json_object_get(o, "issuer")),
	       json_string_value(json_object_get(o, "not_after")),
	       json_string_value(json_object_get(o, "certificate_sha256")),
	       json_string_value(json_object_get(o, "public_key_sha256")),
	       json_string_value(json_object_get(o, "public_key_sha256_base64")));
}

/* "cert fingerprints": what users compare, for the first certificate of each file. */
static int cert_fingerprints(int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	json_t *all = json_array();
	int rc = 0;

	if (argc < 2)
		return cli_usage(cert_usage);
	for (int i = 1; i < argc; i++) {
		struct posture_chain chain;
		char *err = NULL;

		if (!posture_read_chain(argv[i], &chain, &err)) {
			fprintf(pw_stderr, "postwarden: %s\n", err);
			free(err);
			rc = 1;
			continue;
		}
		json_array_append_new(all, cert_fingerprint_json(argv[i], chain.certs[0]));
		posture_chain_free(&chain);
	}
	if (json) {
		json_dumpf(all, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		for (size_t i = 0; i < json_array_size(all); i++)
			cert_fingerprint_print(json_array_get(all, i));
	}
	json_decref(all);
	return rc;
}

int cli_cert(struct cli *cli, int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", cert_usage);
		return 0;
	}
	if (argc < 2)
		return cli_usage(cert_usage);
	if (strcmp(argv[1], "tlsa") == 0)
		return cert_tlsa(argc - 1, argv + 1);
	if (strcmp(argv[1], "caa") == 0)
		return cert_caa(argc - 1, argv + 1);
	if (strcmp(argv[1], "fingerprints") == 0)
		return cert_fingerprints(argc - 1, argv + 1);
	return cli_usage(cert_usage);
}
