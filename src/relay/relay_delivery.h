/*
 * relay_delivery.h - one outgoing delivery (relay_mta.c) and the probe behind tls-check.
 *
 * The scheduler hands relay_mta a job: one message, one destination domain, the recipients
 * of that message at that domain that share the same guarantee setting. The session resolves
 * MX, addresses and TLSA, connects, negotiates TLS as relay_policy says, delivers in one
 * transaction, and fills in a result per recipient. The same session code in probe mode stops
 * after the TLS handshake (EHLO, STARTTLS, handshake, QUIT) and reports on every MX host.
 */
#ifndef PW_RELAY_DELIVERY_H
#define PW_RELAY_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay.h"
#include "relay_policy.h"
#include "relay_sts.h"
#include "tls.h"

enum mta_outcome {
	MTA_PENDING,
	MTA_DELIVERED,
	MTA_DEFERRED,
	MTA_HELD,
	MTA_BOUNCED,
};

const char *mta_outcome_name(enum mta_outcome o);	/* "delivered", "deferred", ... */

struct mta_rcpt {
	int idx;			/* recipients.idx */
	char *addr;
	char *orcpt;			/* or NULL */
	char *notify;			/* or NULL */
	int attempts;			/* before this one */
	int64_t first_tls_failure;	/* 0: none yet */
	bool release;			/* this attempt goes without the guarantee */
	/* result */
	enum mta_outcome outcome;
	enum policy_reason reason_code;
	char status[16];		/* enhanced status, e.g. "5.7.10" */
	char *reason;			/* one technical line, e.g. the remote reply */
	char *mx;			/* host the result is about, or NULL */
	char ip[64];
	char tls_version[16];		/* "" without TLS */
	char tls_cipher[64];
	enum tls_dane_result dane;
	bool accepted;			/* RCPT accepted in the current transaction */
};

struct mta_probe_host {
	char *name;
	uint16_t pref;
	enum dns_security addr_sec;
	char **addrs;
	size_t naddr;
	bool tlsa_looked_up;
	enum dns_status tlsa_status;
	enum dns_security tlsa_sec;
	char **tlsa;			/* "3 1 1 ab12..." */
	size_t ntlsa;
	enum policy_dane dane;
	char ip[64];			/* the address probed */
	bool connected;
	bool starttls_offered;
	int starttls_code;		/* 0: not sent */
	bool handshake_ok;
	struct tls_info tls;
	bool ok;			/* a sender with the guarantee could deliver here */
	enum policy_reason reason;	/* why not */
	char *detail;			/* technical detail, or NULL */
};

struct mta_probe {
	enum dns_status mx_status;
	enum dns_security mx_sec;
	bool null_mx;
	bool implicit;
	struct mta_probe_host *hosts;
	size_t nhost;
	enum policy_action verdict;	/* PROCEED (deliver), HOLD (stop), DEFER, BOUNCE */
	enum policy_reason reason;
	char *reason_host;		/* the host the reason is about, or NULL */
	/* MTA-STS: the destination's policy as the relay sees it (tls-check shows it) */
	bool sts_looked_up;
	bool sts_have;			/* sts is a valid policy */
	bool sts_cached;		/* taken from the database */
	struct sts_policy sts;
	char *sts_error;		/* why no (fresh) policy could be had, or NULL */
};

struct mta_job {
	char *msg_id;
	char *sender;			/* "" null sender */
	char *domain;
	char *envid, *ret, *body;	/* or NULL */
	bool smtputf8;
	bool notification;		/* one of ours: notify_relay applies */
	bool requiretls;		/* RFC 8689: only to REQUIRETLS hosts with DANE or MTA-STS */
	bool guarantee;			/* in force for every recipient of this job */
	int64_t received;
	uint64_t size;			/* message data bytes (SIZE=, the SIZE limit check) */
	struct mta_rcpt *rcpts;
	size_t nrcpt;
	struct mta_probe *probe;	/* non-NULL: probe mode, results go here */
};

typedef void (*mta_done_cb)(struct mta_job *job, void *arg);

/*
 * Start delivering job (or probing, with job->probe set); cb runs on the loop when every
 * recipient has an outcome other than MTA_PENDING (probe: when every host was tried).
 * The job stays the caller's.
 */
struct mta *mta_start(struct relay *relay, struct mta_job *job, mta_done_cb cb, void *arg);
/* Abandon a session (shutdown); cb is not called, pending recipients stay pending. */
void mta_cancel(struct mta *m);

void mta_job_free(struct mta_job *job);

/*
 * Outgoing connections kept open between deliveries (relay_mta_cache.c): an idle connection to a
 * destination is reused by the next job for it, and TLS sessions are kept per MX address
 * for resumption. Closes every idle connection and forgets the sessions (shutdown).
 */
void mta_cache_free(struct relay *relay);
void mta_probe_free(struct mta_probe *p);
/* The reason for a probe's verdict in words, or NULL when it is "deliver"; caller frees. */
char *mta_probe_reason(const struct mta_probe *p, const char *domain);

#endif
