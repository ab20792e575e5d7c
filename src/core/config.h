/*
 * config.h - postwarden's configuration: one struct per section, filled by conf_load.
 *
 * Every key is documented in docs/postwarden.conf.5; keep the two in step.
 */
#ifndef PW_CONFIG_H
#define PW_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"

struct server_conf {
	char *state_dir;	/* queue and database */
	char *hostname;		/* EHLO name, notification sender domain */
	char *log_level;
	char *log_file;		/* "" = standard error */
	char *user;		/* serve drops root privileges to this user; "" = keep */
	char *node;		/* this node's name among several; "" = the host name */
};

struct database_conf {
	char *url;		/* sqlite:PATH or postgresql://...; "" = sqlite:state_dir/postwarden.db */
	char *password_file;	/* libpq password file; "" = PGPASSFILE or ~/.pgpass */
};

struct relay_conf {
	struct conf_hostport listen;
	struct conf_cidrs trusted_networks;
	uint64_t remote_port;
	char *tls_cert;
	char *tls_key;
	uint64_t max_message_size;
	uint64_t max_recipients;
	uint64_t max_connections;
	int64_t queue_lifetime;
	struct conf_hostport notify_relay;	/* host NULL = deliver notifications by MX */
	int64_t connect_timeout;
	int64_t command_timeout;
	int64_t retry_min;			/* first retry delay; doubles up to retry_max */
	int64_t retry_max;
	uint64_t max_deliveries;		/* parallel outgoing connections */
	char *bare_newline;			/* "normalize" or "reject" */
	char *ca_file;				/* extra CA for receivers' WebPKI checks */
};

struct dns_conf {
	char *unbound_config;
};

struct guarantee_conf {
	bool default_on;
	int64_t retry_for;
	uint64_t hold_days;
	char *language;
};

struct keydir_conf {
	struct conf_hostport dns_server;	/* host NULL: write zone_file instead */
	char *zones;			/* zones served, comma-separated; "" = each address's domain */
	char *tsig_name;
	char *tsig_algorithm;
	char *tsig_secret;		/* base64 */
	int64_t ttl;
	char *zone_file;		/* "" = state_dir/keydir.zone */
	char *wkd_dir;			/* "" = state_dir/wkd */
	uint64_t max_record_size;
	int64_t expiry_margin;
	bool keep_original;
	int64_t retry_interval;
};

struct api_conf {
	struct conf_hostport listen;	/* host NULL: no API */
	char *tokens;			/* comma-separated bearer tokens */
	uint64_t rate_limit;		/* requests per minute and token */
	uint64_t max_connections;
};

struct keysearch_conf {
	char *sources;			/* order and selection: local, dns, wkd, vks, hkp */
	int64_t source_timeout;		/* seconds, each source */
	int64_t deadline;		/* seconds, the whole search */
	char *vks_servers;		/* base URLs, comma-separated */
	char *hkp_servers;
	uint64_t max_response_size;
	bool allow_private;		/* fetch from non-public addresses (tests only) */
	char *ca_file;			/* CA bundle for HTTPS; "" = system default */
	uint64_t cache_entries;
	int64_t cache_min_ttl;
	int64_t cache_max_ttl;
	int64_t negative_ttl;
};

struct metrics_conf {
	struct conf_hostport listen;	/* host NULL or "": no metrics listener */
};

struct ctmon_conf {
	char *watch;			/* A-labels, comma-separated; ".x" = x and below */
	char *log_list;			/* file or https URL; "" = no monitor */
	char *start;			/* "end" or "backfill" */
	char *expected_keys;		/* SPKI SHA-256 pins, lower-case hex, comma-separated */
	char *allowed_issuers;		/* CA names or issuer key hashes, comma-separated */
	char *issuer_caa;		/* "ISSUER=identity" items, comma-separated */
	char *alert_to;			/* mail addresses, comma-separated */
	char *webhook;			/* URL the findings are POSTed to */
	char *hook;			/* command run once per finding */
	int64_t stale_after;		/* seconds without a good answer from a log */
	int64_t interval;		/* seconds between rounds over the logs */
	uint64_t requests_per_second;	/* per log */
	uint64_t parallel;		/* requests in flight per log */
	bool allow_private;		/* logs on loopback or private addresses (tests) */
	char *ca_file;			/* CA bundle for HTTPS; "" = system default */
};

struct migrate_conf {
	char *destination;		/* imaps://HOST[:PORT] or imap://HOST[:PORT] (STARTTLS) */
	char *ca_file;			/* extra CA for the servers' certificates; "" = system store */
	uint64_t connections;		/* workers per job = connections per source server */
	int64_t timeout;		/* seconds per network operation */
	uint64_t max_message_size;	/* larger messages are listed as not copied */
	char *hosts;			/* "name=address, ..." used instead of DNS */
	bool allow_private;		/* the old provider may be on a private address */
	/* -- address books (migrate contacts) -- */
	char *carddav_destination;	/* the provider's CardDAV server; "" = --to-url needed */
	uint64_t jobs;			/* jobs serve's API runs at once on this node */
	char *master_user;		/* API jobs log in to the destination as USER*MASTER */
	char *master_password_file;	/* its password; mode 0600, read at each job's start */
};

/* The installation prefix (make's PREFIX) and the settings page under it. */
#ifndef PW_PREFIX
#define PW_PREFIX "/usr/local"
#endif
#define PW_DEFAULT_WWW PW_PREFIX "/share/postwarden/www"

/* The user's side: sign-in, sessions and the account API (src/account/). */
struct account_conf {
	struct conf_hostport listen;	/* host NULL or "": no account listener */
	char *tls_cert;			/* "" = plain HTTP (loopback only) */
	char *tls_key;
	char *www_dir;			/* the settings page; "" = the installed one or ./www */
	char *imap;			/* sign-in: imaps://HOST[:PORT] or imap://LOOPBACK[:PORT] */
	char *ca_file;			/* extra CA for imap's certificate; "" = system store */
	char *imap_address;		/* address for imap's host instead of DNS; "" = resolve */
	char *sso_secret;		/* HMAC-SHA256 key of webmail assertions; "" = no SSO */
	int64_t idle_timeout;		/* seconds a session lives without use */
	int64_t session_lifetime;	/* seconds a session lives at most */
	bool insecure_cookie;		/* no Secure flag (plain-HTTP loopback tests) */
	uint64_t login_failures;	/* failed sign-ins allowed per window, address or client */
	int64_t login_window;		/* seconds */
	uint64_t max_connections;
};

/* MTA-STS as a sender (RFC 8461). */
struct mta_sts_conf {
	bool enabled;			/* look up and honour receivers' policies */
	int64_t fetch_timeout;		/* seconds for one policy fetch */
	char *hosts;			/* "name=address, ..." used instead of DNS for policy hosts */
	bool allow_private;		/* policy hosts on loopback or private addresses (tests) */
	uint64_t port;			/* policy host's HTTPS port: 443 except in tests */
};

/* Daily TLS reports (RFC 8460). */
struct tlsrpt_conf {
	bool enabled;			/* count outcomes and send reports */
	char *organization;		/* organization-name in the reports */
	char *contact;			/* contact-info in the reports */
	char *from;			/* the reports' sender address; "" = postmaster@hostname */
	int64_t send_at;		/* seconds after 00:00 UTC when yesterday's reports go */
	bool allow_private;		/* https: report receivers on private addresses (tests) */
};

/* Remembering receivers' TLS to notice downgrades. */
struct downgrade_conf {
	int64_t remember;		/* seconds a good TLS sighting counts */
	int64_t defer_for;		/* seconds a downgraded destination is deferred */
	char *alert_to;			/* operator addresses, comma-separated; "" = log only */
};

struct pw_config {
	char *path;		/* the file read */
	struct server_conf server;
	struct database_conf database;
	struct relay_conf relay;
	struct dns_conf dns;
	struct guarantee_conf guarantee;
	struct keydir_conf keydir;
	struct api_conf api;
	struct keysearch_conf keysearch;
	struct metrics_conf metrics;
	struct ctmon_conf ctmon;
	struct migrate_conf migrate;
	struct account_conf account;
	struct mta_sts_conf mta_sts;
	struct tlsrpt_conf tlsrpt;
	struct downgrade_conf downgrade;
};

/*
 * Load path, or when path is NULL ./postwarden.conf, then /etc/postwarden/postwarden.conf,
 * then built-in defaults alone. Returns -1 with *err ("FILE:LINE: sentence") on error.
 */
int config_load(struct pw_config *cfg, const char *path, char **err);
void config_free(struct pw_config *cfg);
/* Path of a file inside state_dir (caller frees). */
char *config_state_path(const struct pw_config *cfg, const char *name);
/* Write every key with its default and documentation, in config-file syntax, to out. */
void config_print_defaults(FILE *out);

#endif
