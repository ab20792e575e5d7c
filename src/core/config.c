/*
 * config.c - the key tables of every section and loading the file; see config.h.
 */
#include "config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define DAY (24 * 3600)

static const char *const log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const languages[] = { "en", "de", NULL };
static const char *const bare_newlines[] = { "normalize", "reject", NULL };

#define SRV(f) offsetof(struct server_conf, f)
static const struct conf_key server_keys[] = {
	{ "state_dir", CONF_STRING, "./var", SRV(state_dir), 0, 0, NULL,
	  "Directory for the queue and the database." },
	{ "hostname", CONF_STRING, "", SRV(hostname), 0, 0, NULL,
	  "Name used in EHLO and as the domain of notification senders (default: the system host name)." },
	{ "log_level", CONF_ENUM, "info", SRV(log_level), 0, 0, log_levels,
	  "debug, info, warn or error. Addresses of key searches are logged only at debug." },
	{ "log_file", CONF_STRING, "", SRV(log_file), 0, 0, NULL,
	  "Append log lines to this file instead of standard error." },
	{ "user", CONF_STRING, "", SRV(user), 0, 0, NULL,
	  "When started as root, serve gives state_dir to this user and runs as it once its "
	  "ports are bound (empty: keep running as root)." },
	{ "node", CONF_STRING, "", SRV(node), 0, 0, NULL,
	  "This node's name when several postwarden machines share one PostgreSQL database "
	  "(default: the host name). Each node has its own spool; the queue remembers which "
	  "node holds each message." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define DBS(f) offsetof(struct database_conf, f)
static const struct conf_key database_keys[] = {
	{ "url", CONF_STRING, "", DBS(url), 0, 0, NULL,
	  "Where accounts, keys and the queue index live: sqlite:PATH (default: "
	  "sqlite:state_dir/postwarden.db) or postgresql://user@host:port/dbname to share one "
	  "PostgreSQL database among several nodes. Put no password here: use password_file." },
	{ "password_file", CONF_STRING, "", DBS(password_file), 0, 0, NULL,
	  "PostgreSQL password file (lines host:port:dbname:user:password, mode 0600; "
	  "default: PGPASSFILE or ~/.pgpass)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define RLY(f) offsetof(struct relay_conf, f)
static const struct conf_key relay_keys[] = {
	{ "listen", CONF_HOSTPORT, "127.0.0.1:10025", RLY(listen), 0, 0, NULL,
	  "Address and port on which the relay accepts mail from the provider's MTA." },
	{ "trusted_networks", CONF_CIDRS, "127.0.0.0/8, ::1/128", RLY(trusted_networks), 0, 0, NULL,
	  "Clients allowed to send through the relay; everyone else gets 554 at connect." },
	{ "remote_port", CONF_UINT, "25", RLY(remote_port), 1, 65535, NULL,
	  "TCP port used to connect to every MX host." },
	{ "tls_cert", CONF_STRING, "", RLY(tls_cert), 0, 0, NULL,
	  "PEM certificate chain offered with STARTTLS on the listener (empty: no STARTTLS)." },
	{ "tls_key", CONF_STRING, "", RLY(tls_key), 0, 0, NULL,
	  "PEM private key for tls_cert." },
	{ "max_message_size", CONF_SIZE, "50M", RLY(max_message_size), 1024, 1ULL << 32, NULL,
	  "Largest message accepted, announced with SIZE." },
	{ "max_recipients", CONF_UINT, "1000", RLY(max_recipients), 1, 100000, NULL,
	  "Most recipients per message." },
	{ "max_connections", CONF_UINT, "100", RLY(max_connections), 1, 100000, NULL,
	  "Most simultaneous incoming connections; more get 421." },
	{ "queue_lifetime", CONF_DURATION, "5d", RLY(queue_lifetime), 60, 0, NULL,
	  "How long temporary failures are retried before the message bounces." },
	{ "notify_relay", CONF_HOSTPORT, "", RLY(notify_relay), 0, 0, NULL,
	  "host:port that receives notifications for senders (empty: deliver them by MX)." },
	{ "connect_timeout", CONF_DURATION, "30s", RLY(connect_timeout), 1, 3600, NULL,
	  "Timeout for connecting to an MX host." },
	{ "command_timeout", CONF_DURATION, "5m", RLY(command_timeout), 1, 3600, NULL,
	  "Timeout for each SMTP command and reply, in and out." },
	{ "retry_min", CONF_DURATION, "5m", RLY(retry_min), 1, 0, NULL,
	  "First delay after a temporary failure; it doubles with each attempt." },
	{ "retry_max", CONF_DURATION, "1h", RLY(retry_max), 1, 0, NULL,
	  "Longest delay between two attempts." },
	{ "max_deliveries", CONF_UINT, "50", RLY(max_deliveries), 1, 10000, NULL,
	  "Most simultaneous outgoing SMTP connections." },
	{ "bare_newline", CONF_ENUM, "normalize", RLY(bare_newline), 0, 0, bare_newlines,
	  "Message data with a bare CR or bare LF: normalize (pass it on with CRLF line ends) or "
	  "reject (550 5.5.2 after the final dot)." },
	{ "ca_file", CONF_STRING, "", RLY(ca_file), 0, 0, NULL,
	  "PEM file of CA certificates trusted besides the system store when a receiver's "
	  "certificate is checked by name (MTA-STS, the downgrade memory): a private CA of "
	  "tests." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

static const struct conf_key dns_keys[] = {
	{ "unbound_config", CONF_STRING, "", offsetof(struct dns_conf, unbound_config), 0, 0, NULL,
	  "unbound.conf for the validating resolver (stub zones, trust anchors, forwarders); "
	  "empty: recursion from the root with Debian's trust anchor." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define GRT(f) offsetof(struct guarantee_conf, f)
static const struct conf_key guarantee_keys[] = {
	{ "default", CONF_BOOL, "off", GRT(default_on), 0, 0, NULL,
	  "Whether new accounts start with the TLS-sending guarantee on." },
	{ "retry_for", CONF_DURATION, "0", GRT(retry_for), 0, 7 * DAY, NULL,
	  "How long TLS failures under the guarantee are retried before the sender is told (0: at once)." },
	{ "hold_days", CONF_UINT, "7", GRT(hold_days), 0, 365, NULL,
	  "Days a stopped recipient is held for 'postwarden queue release'." },
	{ "language", CONF_ENUM, "en", GRT(language), 0, 0, languages,
	  "Language of notifications: en or de." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

static const char *const tsig_algorithms[] = { "hmac-sha256", "hmac-sha384", "hmac-sha512",
					       "hmac-sha1", NULL };

#define KDR(f) offsetof(struct keydir_conf, f)
static const struct conf_key keydir_keys[] = {
	{ "dns_server", CONF_HOSTPORT, "", KDR(dns_server), 0, 0, NULL,
	  "Primary DNS server (host:port) that takes RFC 2136 updates for the key records; "
	  "empty: write them to zone_file." },
	{ "zones", CONF_STRING, "", KDR(zones), 0, 0, NULL,
	  "Zones the server holds, comma-separated; an address goes to the longest zone that "
	  "contains its domain (empty: the address's domain is the zone)." },
	{ "tsig_name", CONF_STRING, "", KDR(tsig_name), 0, 0, NULL,
	  "Name of the TSIG key that signs updates." },
	{ "tsig_algorithm", CONF_ENUM, "hmac-sha256", KDR(tsig_algorithm), 0, 0, tsig_algorithms,
	  "TSIG algorithm." },
	{ "tsig_secret", CONF_STRING, "", KDR(tsig_secret), 0, 0, NULL,
	  "The TSIG key's secret, base64." },
	{ "ttl", CONF_DURATION, "1h", KDR(ttl), 60, 7 * DAY, NULL,
	  "TTL of published OPENPGPKEY and SMIMEA records." },
	{ "zone_file", CONF_STRING, "", KDR(zone_file), 0, 0, NULL,
	  "Zone file fragment written when no dns_server is set (default: state_dir/keydir.zone)." },
	{ "wkd_dir", CONF_STRING, "", KDR(wkd_dir), 0, 0, NULL,
	  "Root of the Web Key Directory tree a web server serves (default: state_dir/wkd)." },
	{ "max_record_size", CONF_SIZE, "16K", KDR(max_record_size), 512, 65000, NULL,
	  "Largest published key after minimisation, in bytes." },
	{ "expiry_margin", CONF_DURATION, "7d", KDR(expiry_margin), 0, 365 * DAY, NULL,
	  "Refuse keys that expire within this time; published keys are taken down this long "
	  "before they expire." },
	{ "keep_original", CONF_BOOL, "off", KDR(keep_original), 0, 0, NULL,
	  "Keep the original upload beside the minimised key." },
	{ "retry_interval", CONF_DURATION, "5m", KDR(retry_interval), 10, DAY, NULL,
	  "Delay before a failed DNS update is tried again." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define API(f) offsetof(struct api_conf, f)
static const struct conf_key api_keys[] = {
	{ "listen", CONF_HOSTPORT, "127.0.0.1:8080", API(listen), 0, 0, NULL,
	  "Address and port of the key search HTTP API served by serve (empty: no API)." },
	{ "tokens", CONF_STRING, "", API(tokens), 0, 0, NULL,
	  "Bearer tokens allowed to use the API, comma-separated (empty: every request is refused)." },
	{ "rate_limit", CONF_UINT, "120", API(rate_limit), 1, 1000000, NULL,
	  "Requests per minute allowed for each token; more get 429." },
	{ "max_connections", CONF_UINT, "256", API(max_connections), 1, 100000, NULL,
	  "Most simultaneous API connections." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define KSR(f) offsetof(struct keysearch_conf, f)
static const struct conf_key keysearch_keys[] = {
	{ "sources", CONF_STRING, "local, dns, wkd, vks", KSR(sources), 0, 0, NULL,
	  "Sources asked, all at once, and their order of preference among equals: local, dns, "
	  "wkd, vks, hkp." },
	{ "source_timeout", CONF_DURATION, "5s", KSR(source_timeout), 1, 60, NULL,
	  "Time each source gets." },
	{ "deadline", CONF_DURATION, "8s", KSR(deadline), 1, 120, NULL,
	  "Time the whole search gets; what has arrived by then is answered." },
	{ "vks_servers", CONF_STRING, "https://keys.openpgp.org", KSR(vks_servers), 0, 0, NULL,
	  "Keyservers with e-mail verification (VKS API), comma-separated base URLs." },
	{ "hkp_servers", CONF_STRING, "", KSR(hkp_servers), 0, 0, NULL,
	  "Classic HKP keyservers, comma-separated base URLs (used only when hkp is in sources)." },
	{ "max_response_size", CONF_SIZE, "256K", KSR(max_response_size), 1024, 16 * 1024 * 1024, NULL,
	  "Largest answer accepted from a web source." },
	{ "allow_private", CONF_BOOL, "off", KSR(allow_private), 0, 0, NULL,
	  "Allow fetching from loopback, private and link-local addresses (for tests only)." },
	{ "ca_file", CONF_STRING, "", KSR(ca_file), 0, 0, NULL,
	  "CA bundle for HTTPS sources (empty: the system's)." },
	{ "cache_entries", CONF_UINT, "10000", KSR(cache_entries), 0, 10000000, NULL,
	  "Answers kept in memory (0: no cache)." },
	{ "cache_min_ttl", CONF_DURATION, "1m", KSR(cache_min_ttl), 0, 0, NULL,
	  "Shortest time an answer is cached, whatever its source says." },
	{ "cache_max_ttl", CONF_DURATION, "1d", KSR(cache_max_ttl), 0, 0, NULL,
	  "Longest time an answer is cached." },
	{ "negative_ttl", CONF_DURATION, "10m", KSR(negative_ttl), 0, 0, NULL,
	  "How long \"no key here\" is cached, so keyservers' rate limits are respected." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define MET(f) offsetof(struct metrics_conf, f)
static const struct conf_key metrics_keys[] = {
	{ "listen", CONF_HOSTPORT, "", MET(listen), 0, 0, NULL,
	  "Address and port where serve answers GET /metrics for Prometheus (empty: no metrics "
	  "listener)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define MIG(f) offsetof(struct migrate_conf, f)
static const struct conf_key migrate_keys[] = {
	{ "destination", CONF_STRING, "", MIG(destination), 0, 0, NULL,
	  "The provider's IMAP server that \"postwarden migrate mail\" copies into when --to "
	  "is not given: imaps://HOST[:PORT] (TLS from the start, port 993) or "
	  "imap://HOST[:PORT] (STARTTLS, port 143)." },
	{ "ca_file", CONF_STRING, "", MIG(ca_file), 0, 0, NULL,
	  "PEM file of CA certificates trusted besides the system store for the IMAP servers "
	  "of a migration (a private CA of the destination, or of a test server)." },
	{ "connections", CONF_UINT, "4", MIG(connections), 1, 16, NULL,
	  "Folders copied at once by one migration job: each takes one connection to the old "
	  "provider (which may throttle more) and one to the destination." },
	{ "timeout", CONF_DURATION, "2m", MIG(timeout), 5, 3600, NULL,
	  "Longest wait for a migration's server to answer or accept data before the "
	  "connection counts as lost (the folder is tried up to three times on new connections)." },
	{ "max_message_size", CONF_SIZE, "64M", MIG(max_message_size), 1024, 1ULL << 31, NULL,
	  "Largest message a migration copies (messages over 1 MiB pass in 64 kB pieces, never "
	  "held whole); larger ones are listed in the summary as not copied." },
	{ "hosts", CONF_STRING, "", MIG(hosts), 0, 0, NULL,
	  "Fixed addresses for server names, like /etc/hosts: name=address items, "
	  "comma-separated. The name is still the one the certificate must match (a "
	  "destination reached on an internal address; tests)." },
	{ "allow_private", CONF_BOOL, "off", MIG(allow_private), 0, 0, NULL,
	  "Allow the old provider's server (mail and address books) on loopback or private "
	  "addresses. Off: a user's migration never reaches into the provider's own network "
	  "(tests turn it on)." },
	/* -- address books (migrate contacts) -- */
	{ "carddav_destination", CONF_STRING, "", MIG(carddav_destination), 0, 0, NULL,
	  "The provider's own CardDAV server, where postwarden migrate contacts writes the "
	  "address books it copies (an http(s) URL; the user's address book home is found "
	  "from it). Empty: each run names it with --to-url." },
	{ "jobs", CONF_UINT, "2", MIG(jobs), 1, 64, NULL,
	  "Migration jobs serve's API (POST /v1/migrations) runs at once on this node; a "
	  "request beyond it is answered 429 with Retry-After, nothing is queued." },
	{ "master_user", CONF_STRING, "", MIG(master_user), 0, 0, NULL,
	  "A master user of the destination (Dovecot): the API's mail jobs log in as "
	  "USER*MASTER with its password, and a request need not carry the user's own "
	  "destination password. Empty: each request brings the user's password." },
	{ "master_password_file", CONF_STRING, "", MIG(master_password_file), 0, 0, NULL,
	  "File holding master_user's password (its first line), readable only by postwarden's "
	  "user (mode 0600 or 0400, owned by it): read when a job starts, wiped when it ends; a "
	  "file other users may read is refused." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define ACC(f) offsetof(struct account_conf, f)
static const struct conf_key account_keys[] = {
	{ "listen", CONF_HOSTPORT, "", ACC(listen), 0, 0, NULL,
	  "Address and port of the users' settings page and account API served by serve "
	  "(empty: none). Plain HTTP only on loopback, behind a TLS proxy; elsewhere set "
	  "tls_cert and tls_key." },
	{ "tls_cert", CONF_STRING, "", ACC(tls_cert), 0, 0, NULL,
	  "PEM certificate chain: the account listener speaks HTTPS." },
	{ "tls_key", CONF_STRING, "", ACC(tls_key), 0, 0, NULL,
	  "PEM private key of tls_cert." },
	{ "www_dir", CONF_STRING, "", ACC(www_dir), 0, 0, NULL,
	  "Folder of the settings page's static files, served at / (empty: "
	  PW_DEFAULT_WWW " when present, else www in the working directory)." },
	{ "imap", CONF_STRING, "", ACC(imap), 0, 0, NULL,
	  "The provider's IMAP server that checks a user's password at sign-in (IMAP LOGIN): "
	  "imaps://HOST[:PORT], or imap://ADDRESS[:PORT] on a loopback address (empty: no "
	  "password sign-in)." },
	{ "ca_file", CONF_STRING, "", ACC(ca_file), 0, 0, NULL,
	  "PEM file of CA certificates trusted besides the system store for imap's "
	  "certificate (empty: the system store alone)." },
	{ "imap_address", CONF_STRING, "", ACC(imap_address), 0, 0, NULL,
	  "IP address to connect to for imap instead of resolving its host name, which the "
	  "certificate must still match (a name that does not resolve from here; tests)." },
	{ "sso_secret", CONF_STRING, "", ACC(sso_secret), 0, 0, NULL,
	  "Shared secret (at least 32 characters) with which the provider's webmail signs "
	  "sign-in assertions, HMAC-SHA256 (empty: no single sign-on)." },
	{ "idle_timeout", CONF_DURATION, "30m", ACC(idle_timeout), 1, 30 * DAY, NULL,
	  "A session not used for this long ends." },
	{ "session_lifetime", CONF_DURATION, "12h", ACC(session_lifetime), 1, 365 * DAY, NULL,
	  "A session ends this long after sign-in however much it is used." },
	{ "insecure_cookie", CONF_BOOL, "off", ACC(insecure_cookie), 0, 0, NULL,
	  "Leave the Secure flag off the session cookie, for plain HTTP on loopback (tests "
	  "only: browsers then send the cookie without TLS)." },
	{ "login_failures", CONF_UINT, "5", ACC(login_failures), 1, 100000, NULL,
	  "Failed password sign-ins allowed within login_window, counted per address and per client "
	  "address (shared by every node); more are answered 429 until the window passes." },
	{ "login_window", CONF_DURATION, "15m", ACC(login_window), 1, DAY, NULL,
	  "The window over which failed sign-ins are counted." },
	{ "max_connections", CONF_UINT, "256", ACC(max_connections), 1, 100000, NULL,
	  "Most simultaneous connections to the account listener." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

static const char *const ctmon_starts[] = { "end", "backfill", NULL };

#define CTM(f) offsetof(struct ctmon_conf, f)
static const struct conf_key ctmon_keys[] = {
	{ "log_list", CONF_STRING, "", CTM(log_list), 0, 0, NULL,
	  "Certificate Transparency log list (v3 JSON as the public lists publish it): a file "
	  "or an https URL (empty: no CT monitor). Retired and rejected logs are skipped." },
	{ "watch", CONF_STRING, "", CTM(watch), 0, 0, NULL,
	  "Domains whose certificates are watched, comma-separated; \".example.org\" means "
	  "example.org and every name below it; internationalised names may be written either "
	  "way (default: each [keydir] zone with the names below it, and the server's hostname)." },
	{ "start", CONF_ENUM, "end", CTM(start), 0, 0, ctmon_starts,
	  "Where watching a log starts the first time: end (new entries only) or backfill "
	  "(from its first entry)." },
	{ "expected_keys", CONF_STRING, "", CTM(expected_keys), 0, 0, NULL,
	  "SHA-256 pins of the public keys (SPKI) of the provider's own certificates, current "
	  "and next, hex or base64, comma-separated (postwarden cert fingerprints prints them)." },
	{ "allowed_issuers", CONF_STRING, "", CTM(allowed_issuers), 0, 0, NULL,
	  "CAs that may issue the provider's certificates: names as in the issuer's O or CN, or "
	  "SHA-256 hashes of issuer keys, comma-separated." },
	{ "issuer_caa", CONF_STRING, "", CTM(issuer_caa), 0, 0, NULL,
	  "CAA identities of issuers, for the CAA check of each finding: ISSUER=identity items, "
	  "comma-separated, ISSUER a name as in the issuer's O or CN or the SHA-256 of its key "
	  "(\"Example CA=ca.example\"); well-known public CAs are built in." },
	{ "alert_to", CONF_STRING, "", CTM(alert_to), 0, 0, NULL,
	  "Mail addresses that get each finding, sent through this relay, comma-separated." },
	{ "webhook", CONF_STRING, "", CTM(webhook), 0, 0, NULL,
	  "https URL each finding is POSTed to as JSON (retried with backoff)." },
	{ "hook", CONF_STRING, "", CTM(hook), 0, 0, NULL,
	  "Command run once per finding, with the finding in environment variables and as "
	  "JSON on standard input." },
	{ "interval", CONF_DURATION, "1m", CTM(interval), 1, DAY, NULL,
	  "Time between two rounds over the logs in serve (each round reads what was logged "
	  "since the last)." },
	{ "stale_after", CONF_DURATION, "1h", CTM(stale_after), 1, 7 * DAY, NULL,
	  "A log that gives no good answer for this long, or a log list URL that cannot be "
	  "fetched for this long, is an alert (once per episode)." },
	{ "requests_per_second", CONF_UINT, "10", CTM(requests_per_second), 1, 10000, NULL,
	  "Most requests per second to one log." },
	{ "parallel", CONF_UINT, "4", CTM(parallel), 1, 64, NULL,
	  "Requests in flight to one log." },
	{ "allow_private", CONF_BOOL, "off", CTM(allow_private), 0, 0, NULL,
	  "Allow logs and webhooks on loopback and private addresses, and plain http (for "
	  "tests only)." },
	{ "ca_file", CONF_STRING, "", CTM(ca_file), 0, 0, NULL,
	  "CA bundle for the logs' and the webhook's HTTPS (empty: the system's)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define STS(f) offsetof(struct mta_sts_conf, f)
static const struct conf_key mta_sts_keys[] = {
	{ "enabled", CONF_BOOL, "on", STS(enabled), 0, 0, NULL,
	  "Look up receivers' MTA-STS policies (RFC 8461) and honour them for every sender: "
	  "under mode enforce only matching MX hosts with a valid certificate get the mail." },
	{ "fetch_timeout", CONF_DURATION, "30s", STS(fetch_timeout), 1, 300, NULL,
	  "Longest time one policy fetch (https://mta-sts.DOMAIN/.well-known/mta-sts.txt) "
	  "may take." },
	{ "hosts", CONF_STRING, "", STS(hosts), 0, 0, NULL,
	  "Fixed addresses for policy hosts, like /etc/hosts: name=address items, "
	  "comma-separated (tests)." },
	{ "allow_private", CONF_BOOL, "off", STS(allow_private), 0, 0, NULL,
	  "Allow policy hosts on loopback or private addresses (tests only)." },
	{ "port", CONF_UINT, "443", STS(port), 1, 65535, NULL,
	  "HTTPS port of the policy hosts (443; another only for tests)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define RPT(f) offsetof(struct tlsrpt_conf, f)
static const struct conf_key tlsrpt_keys[] = {
	{ "enabled", CONF_BOOL, "on", RPT(enabled), 0, 0, NULL,
	  "Count every delivery's TLS outcome and send the daily TLS reports (RFC 8460) to "
	  "the domains that ask for them in _smtp._tls TXT." },
	{ "organization", CONF_STRING, "", RPT(organization), 0, 0, NULL,
	  "organization-name in the reports (default: server hostname)." },
	{ "contact", CONF_STRING, "", RPT(contact), 0, 0, NULL,
	  "contact-info in the reports (default: the reports' sender address)." },
	{ "from", CONF_STRING, "", RPT(from), 0, 0, NULL,
	  "Sender address of the reports sent by mail (default: postmaster@hostname)." },
	{ "send_at", CONF_DURATION, "1h", RPT(send_at), 0, DAY - 1, NULL,
	  "Time after 00:00 UTC when the previous day's reports are sent." },
	{ "allow_private", CONF_BOOL, "off", RPT(allow_private), 0, 0, NULL,
	  "Let https: report receivers be on loopback or private addresses (tests only)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define DGR(f) offsetof(struct downgrade_conf, f)
static const struct conf_key downgrade_keys[] = {
	{ "remember", CONF_DURATION, "30d", DGR(remember), 0, 0, NULL,
	  "How long a receiver's valid TLS is remembered: when it offers none or an invalid "
	  "certificate within this time, mail to it is deferred (0: no memory)." },
	{ "defer_for", CONF_DURATION, "1h", DGR(defer_for), 0, 0, NULL,
	  "How long mail to a downgraded receiver is deferred before it goes out as the "
	  "sender's policy allows." },
	{ "alert_to", CONF_STRING, "", DGR(alert_to), 0, 0, NULL,
	  "Operator addresses (comma-separated) told once per downgrade (empty: log and "
	  "metric only)." },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

#define NSECTIONS 15

/* The section table for a config struct. */
static void config_sections(struct pw_config *cfg, struct conf_section out[NSECTIONS])
{
	out[0] = (struct conf_section){ "server", server_keys, &cfg->server };
	out[1] = (struct conf_section){ "database", database_keys, &cfg->database };
	out[2] = (struct conf_section){ "relay", relay_keys, &cfg->relay };
	out[3] = (struct conf_section){ "dns", dns_keys, &cfg->dns };
	out[4] = (struct conf_section){ "guarantee", guarantee_keys, &cfg->guarantee };
	out[5] = (struct conf_section){ "keydir", keydir_keys, &cfg->keydir };
	out[6] = (struct conf_section){ "api", api_keys, &cfg->api };
	out[7] = (struct conf_section){ "keysearch", keysearch_keys, &cfg->keysearch };
	out[8] = (struct conf_section){ "metrics", metrics_keys, &cfg->metrics };
	out[9] = (struct conf_section){ "ctmon", ctmon_keys, &cfg->ctmon };
	out[10] = (struct conf_section){ "migrate", migrate_keys, &cfg->migrate };
	out[11] = (struct conf_section){ "account", account_keys, &cfg->account };
	out[12] = (struct conf_section){ "mta_sts", mta_sts_keys, &cfg->mta_sts };
	out[13] = (struct conf_section){ "tlsrpt", tlsrpt_keys, &cfg->tlsrpt };
	out[14] = (struct conf_section){ "downgrade", downgrade_keys, &cfg->downgrade };
}

/* Is name fit to be a node name (it appears in logs, status and the database)? */
static bool config_node_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr(".-_", name[i]) == NULL)
			return false;
	return true;
}

/* The node name and the database URL, with their defaults. */
static int config_validate_storage(struct pw_config *cfg, char **err)
{
	if (*cfg->server.node == '\0') {
		char host[256] = "localhost";

		gethostname(host, sizeof(host) - 1);
		free(cfg->server.node);
		cfg->server.node = xstrdup(host);
	}
	if (!config_node_name_ok(cfg->server.node)) {
		*err = xasprintf("%s: [server] node \"%s\": use up to 64 letters, digits, '.', '-' "
				 "or '_'", cfg->path, cfg->server.node);
		return -1;
	}
	if (*cfg->database.url == '\0') {
		char *path = config_state_path(cfg, "postwarden.db");

		free(cfg->database.url);
		cfg->database.url = xasprintf("sqlite:%s", path);
		free(path);
	}
	return 0;
}

/* Append item to a comma-separated list held in *list. */
static void config_list_add(char **list, const char *item)
{
	char *t = **list ? xasprintf("%s, %s", *list, item) : xstrdup(item);

	free(*list);
	*list = t;
}

/*
 * [ctmon] watch as lower-case A-labels ("." prefix kept), or its default: each [keydir]
 * zone with the names below it, and the server's hostname.
 */
static int config_ctmon_watch(struct pw_config *cfg, char **err)
{
	bool given = *cfg->ctmon.watch != '\0';
	char *copy = xstrdup(given ? cfg->ctmon.watch : cfg->keydir.zones), *save = NULL;
	char *out = xstrdup("");
	int rc = 0;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *name = str_trim(tok), *ascii, *item;
		bool below = !given || name[0] == '.';

		if (*name == '\0')
			continue;
		if ((ascii = domain_to_ascii(name + (name[0] == '.'))) == NULL) {
			*err = xasprintf("%s: [ctmon] watch: \"%s\" is not a domain name", cfg->path,
					 name);
			rc = -1;
			break;
		}
		item = xasprintf("%s%s", below ? "." : "", ascii);
		config_list_add(&out, item);
		free(item);
		free(ascii);
	}
	if (rc == 0 && !given) {
		char *host = domain_to_ascii(cfg->server.hostname);

		if (host != NULL)
			config_list_add(&out, host);
		free(host);
	}
	free(copy);
	free(cfg->ctmon.watch);
	cfg->ctmon.watch = out;
	return rc;
}

/* A SHA-256 pin in hex or base64 as lower-case hex (65 bytes); false if it is neither. */
static bool config_pin_hex(const char *pin, char out[65])
{
	unsigned char raw[48];
	size_t len = strlen(pin);

	if (len == 64 && strspn(pin, "0123456789abcdefABCDEF") == 64) {
		for (size_t i = 0; i <= len; i++)
			out[i] = (char)tolower((unsigned char)pin[i]);
		return true;
	}
	/* base64 of 32 bytes: 44 characters ending in one '=', decoded to 33 with the pad */
	if (len != 44 || pin[43] != '=' ||
	    EVP_DecodeBlock(raw, (const unsigned char *)pin, 44) != 33)
		return false;
	hex_encode(raw, 32, out);
	return true;
}

/* [ctmon] expected_keys as lower-case hex pins. */
static int config_ctmon_pins(struct pw_config *cfg, char **err)
{
	char *copy = xstrdup(cfg->ctmon.expected_keys), *save = NULL, *out = xstrdup("");
	int rc = 0;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *pin = str_trim(tok), hex[65];

		if (*pin == '\0')
			continue;
		if (!config_pin_hex(pin, hex)) {
			*err = xasprintf("%s: [ctmon] expected_keys: \"%s\" is not a SHA-256 pin "
					 "(64 hex digits or 44 base64 characters)", cfg->path, pin);
			rc = -1;
			break;
		}
		config_list_add(&out, hex);
	}
	free(copy);
	free(cfg->ctmon.expected_keys);
	cfg->ctmon.expected_keys = out;
	return rc;
}

/* A URL the monitor fetches or posts to: https, or http only for tests. */
static bool config_ctmon_url_ok(const struct pw_config *cfg, const char *url)
{
	return strncmp(url, "https://", 8) == 0 ||
	       (cfg->ctmon.allow_private && strncmp(url, "http://", 7) == 0);
}

/* The [ctmon] keys that need more than their type checked. */
static int config_validate_ctmon(struct pw_config *cfg, char **err)
{
	struct ctmon_conf *c = &cfg->ctmon;
	char *copy, *save = NULL;

	if (config_ctmon_watch(cfg, err) < 0 || config_ctmon_pins(cfg, err) < 0)
		return -1;
	if (strstr(c->log_list, "://") != NULL && !config_ctmon_url_ok(cfg, c->log_list)) {
		*err = xasprintf("%s: [ctmon] log_list: give a file or an https:// URL", cfg->path);
		return -1;
	}
	if (*c->webhook && !config_ctmon_url_ok(cfg, c->webhook)) {
		*err = xasprintf("%s: [ctmon] webhook: give an https:// URL", cfg->path);
		return -1;
	}
	copy = xstrdup(c->alert_to);
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *addr = str_trim(tok);

		if (*addr && !addr_valid(addr)) {
			*err = xasprintf("%s: [ctmon] alert_to: \"%s\" is not a mail address",
					 cfg->path, addr);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

/* Checks that involve more than one key. */
static int config_validate(struct pw_config *cfg, char **err)
{
	if ((*cfg->relay.tls_cert == '\0') != (*cfg->relay.tls_key == '\0')) {
		*err = xasprintf("%s: [relay] tls_cert and tls_key must be set together", cfg->path);
		return -1;
	}
	if (cfg->relay.retry_max < cfg->relay.retry_min) {
		*err = xasprintf("%s: [relay] retry_max must not be shorter than retry_min", cfg->path);
		return -1;
	}
	if (*cfg->server.hostname == '\0') {
		char host[256] = "localhost";
		gethostname(host, sizeof(host) - 1);
		free(cfg->server.hostname);
		cfg->server.hostname = xstrdup(host);
	}
	if ((*cfg->migrate.master_user == '\0') != (*cfg->migrate.master_password_file == '\0')) {
		*err = xasprintf("%s: [migrate] master_user and master_password_file must be set "
				 "together", cfg->path);
		return -1;
	}
	if (config_validate_storage(cfg, err) < 0)
		return -1;
	return config_validate_ctmon(cfg, err);
}

int config_load(struct pw_config *cfg, const char *path, char **err)
{
	static const char *const search[] = { "./postwarden.conf", "/etc/postwarden/postwarden.conf" };
	struct conf_section sections[NSECTIONS];
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	config_sections(cfg, sections);
	for (size_t i = 0; path == NULL && i < 2; i++)
		if (access(search[i], F_OK) == 0)
			path = search[i];
	if (path == NULL) {
		cfg->path = xstrdup("(defaults)");
		rc = conf_defaults(sections, NSECTIONS, err);
	} else {
		cfg->path = xstrdup(path);
		rc = conf_load(path, sections, NSECTIONS, err);
	}
	if (rc == 0)
		rc = config_validate(cfg, err);
	return rc;
}

void config_free(struct pw_config *cfg)
{
	struct conf_section sections[NSECTIONS];

	config_sections(cfg, sections);
	conf_release(sections, NSECTIONS);
	free(cfg->path);
	cfg->path = NULL;
}

char *config_state_path(const struct pw_config *cfg, const char *name)
{
	return xasprintf("%s/%s", cfg->server.state_dir, name);
}

void config_print_defaults(FILE *out)
{
	struct pw_config cfg;
	struct conf_section sections[NSECTIONS];

	config_sections(&cfg, sections);
	for (size_t s = 0; s < NSECTIONS; s++) {
		fprintf(out, "%s[%s]\n", s ? "\n" : "", sections[s].name);
		for (const struct conf_key *k = sections[s].keys; k->name; k++)
			fprintf(out, "# %s\n%s = %s\n", k->doc, k->name, k->def);
	}
}
