/*
 * main.c - the postwarden binary: global options and dispatch to command groups.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"

struct command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary;
	bool no_config;		/* works from its arguments alone */
};

static const struct command commands[] = {
	{ "serve", cli_serve, "run the relay in the foreground", false },
	{ "user", cli_user, "manage accounts and their TLS-sending guarantee", false },
	{ "queue", cli_queue, "list, show, release, delete or flush queued messages", false },
	{ "tls-check", cli_tls_check, "show what the relay would do for a domain right now", false },
	{ "tls-history", cli_tls_history, "what the relay remembers of a domain's TLS; forget it",
	  false },
	{ "keys", cli_keys, "publish users' public keys in DNS and the Web Key Directory", false },
	{ "db", cli_db, "migrate the database schema, show it, copy the data to another", false },
	{ "status", cli_status, "this node, the other nodes, the queue, leases, the database", false },
	{ "ct", cli_ct, "certificates the CT monitor found for your domains; ack them", false },
	{ "tlsrpt", cli_tlsrpt, "the day's TLS outcome counts; send the TLS reports (RFC 8460)", false },
	{ "audit", cli_audit, "check your domain's DNSSEC, TLS, DANE, CAA, MTA-STS, TLS-RPT", false },
	{ "migrate", cli_migrate, "copy a new user's mailbox and address books from their old "
	  "provider", false },
	{ "cert", cli_cert, "TLSA and CAA records and fingerprints for your certificates", true },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: postwarden [-c FILE] COMMAND [ARGS...]\n"
		"\n"
		"postwarden delivers mail with a TLS-sending guarantee.\n"
		"\n"
		"options:\n"
		"  -c FILE     configuration file (default ./postwarden.conf, then\n"
		"              /etc/postwarden/postwarden.conf)\n"
		"  -h, --help  this text; 'postwarden COMMAND --help' describes a command\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-11s %s\n", "config", "print every configuration key with its default");
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	int opt, rc;

	log_own_stderr();
	log_init("postwarden", LOG_LEVEL_INFO, pw_stderr);
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	/* '+': stop at the first non-option, so each command parses its own options. */
	while ((opt = getopt(argc, argv, "+c:h")) != -1) {
		switch (opt) {
		case 'c':
			cli.config_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(pw_stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(pw_stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "config") == 0) {
		config_print_defaults(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[0], commands[i].name) != 0)
			continue;
		if (!commands[i].no_config && !cli_wants_help(argc, argv) && !cli_load_config(&cli))
			return 1;
		rc = commands[i].fn(&cli, argc, argv);
		if (cli.cfg.path)
			config_free(&cli.cfg);
		return rc;
	}
	fprintf(pw_stderr, "postwarden: unknown command \"%s\"; see postwarden --help\n", argv[0]);
	return EXIT_USAGE;
}
