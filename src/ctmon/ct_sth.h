/*
 * ct_sth.h - what CT logs publish about their trees, parsed and signature-checked:
 * RFC 6962 get-sth, get-sth-consistency and get-entries responses (JSON), and the
 * Static CT API checkpoint (a C2SP signed note with an RFC6962NoteSignature).
 *
 * Every parser is bounded and returns errors as one sentence (caller frees); nothing is
 * printed and nothing is kept between calls.
 */
#ifndef PW_CT_STH_H
#define PW_CT_STH_H

#include <stddef.h>
#include <stdint.h>

#include "ctmon/ct_loglist.h"
#include "ctmon/ct_merkle.h"

#define CT_STH_MAX_BYTES (64u * 1024)
#define CT_CONSISTENCY_MAX 64
#define CT_ENTRIES_MAX 1024
#define CT_NOTE_MAX_BYTES (1024u * 1024)
#define CT_NOTE_MAX_SIGS 100
#define CT_TBS_LEN 50	/* version, signature_type, timestamp, tree_size, root hash */

/* A signed tree head, from get-sth or from a checkpoint. */
struct ct_sth {
	uint64_t tree_size;
	uint64_t timestamp;		/* milliseconds since the epoch */
	uint8_t root_hash[CT_HASH_LEN];
	uint8_t *signature;		/* the TLS DigitallySigned struct, as received */
	size_t signature_len;
};

struct ct_consistency {
	uint8_t (*hashes)[CT_HASH_LEN];
	size_t nhashes;
};

struct ct_raw_entry {
	uint8_t *leaf_input;
	size_t leaf_input_len;
	uint8_t *extra_data;
	size_t extra_data_len;
};

struct ct_entries {
	struct ct_raw_entry *entries;
	size_t nentries;
};

/* A checkpoint whose log signature verified. */
struct ct_checkpoint {
	char *origin;
	struct ct_sth sth;		/* timestamp and signature from the log's note signature */
	size_t nsignatures;		/* signature lines, the log's and others */
};

/* get-sth: parse (at most CT_STH_MAX_BYTES) and verify with the log's key. */
int ct_sth_parse(const char *json, size_t len, struct ct_sth *out, char **err);
int ct_sth_verify(const struct ct_sth *sth, const struct ct_log *log, char **err);
void ct_sth_clear(struct ct_sth *sth);

/* The TreeHeadSignature input of RFC 6962 section 3.5 (version v1, tree_hash). */
void ct_sth_tbs(uint64_t timestamp, uint64_t tree_size, const uint8_t root[CT_HASH_LEN],
		uint8_t out[CT_TBS_LEN]);

/*
 * Verify a TLS DigitallySigned struct (hash sha256, signature ecdsa or rsa as fits the
 * key, 2-byte length, signature) over msg with the log's key.
 */
int ct_ds_verify(const struct ct_log *log, const uint8_t *ds, size_t ds_len,
		 const uint8_t *msg, size_t msg_len, char **err);

/* get-sth-consistency: {"consistency":[base64 32-byte hashes]}, at most 64. */
int ct_consistency_parse(const char *json, size_t len, struct ct_consistency *out,
			 char **err);
void ct_consistency_clear(struct ct_consistency *c);

/*
 * get-proof-by-hash: {"leaf_index": N, "audit_path": [base64 32-byte hashes]}, at most 64;
 * the path goes to out (ct_consistency_clear frees it).
 */
int ct_proof_parse(const char *json, size_t len, uint64_t *index, struct ct_consistency *out,
		   char **err);

/*
 * get-entries: {"entries":[{"leaf_input":..., "extra_data":...}]}, at most 1024 entries
 * whose decoded bytes total at most max_bytes (the JSON text may be at most twice that).
 */
int ct_entries_parse(const char *json, size_t len, size_t max_bytes, struct ct_entries *out,
		     char **err);
/* The same with the general JSON parser alone (the reference the fast reader must match). */
int ct_entries_parse_json(const char *json, size_t len, size_t max_bytes,
			  struct ct_entries *out, char **err);
void ct_entries_clear(struct ct_entries *e);

/*
 * A checkpoint (at most CT_NOTE_MAX_BYTES, CT_NOTE_MAX_SIGS signatures) verified against
 * a tiled log: the origin must be the log's submission URL without scheme and trailing
 * slashes, and the log's RFC6962NoteSignature must be present and valid. Signatures by
 * other keys are ignored.
 */
int ct_checkpoint_verify(const char *note, size_t len, const struct ct_log *log,
			 struct ct_checkpoint *out, char **err);
void ct_checkpoint_clear(struct ct_checkpoint *cp);

/* The checkpoint origin of a submission URL (caller frees); NULL if it has no scheme. */
char *ct_checkpoint_origin(const char *submission_url);

/* The note key ID of a log: SHA-256(name || 0x0A || 0x05 || log_id), first 4 bytes. */
uint32_t ct_note_key_id(const char *name, const uint8_t log_id[CT_LOG_ID_LEN]);

#endif
