/*
 * imap_parse.h - IMAP4rev1 server responses (RFC 3501 section 7, 9) as a small tree.
 *
 * A response is the raw bytes of one server response: its lines with the literals they
 * announce ("{N}\r\n" and N bytes) spliced in, as imap_resp_need() assembled them from the
 * wire. The parser keeps pointers into those bytes (nothing is copied), so the bytes must
 * outlive the tree. Every bound is explicit: nesting depth, number of nodes, and a literal
 * may not claim more bytes than the response holds.
 */
#ifndef PW_IMAP_PARSE_H
#define PW_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_MAX_DEPTH 16
#define IMAP_MAX_NODES 65536
#define IMAP_NODE_BLOCK 256

enum imap_node_type {
	IMAP_ATOM,	/* an atom or number; may hold a bracketed section: BODY[HEADER] */
	IMAP_STRING,	/* quoted (unescaped into the arena) or literal (points into the data) */
	IMAP_NIL,
	IMAP_LIST,	/* parenthesised; children follow */
};

struct imap_node {
	enum imap_node_type type;
	const char *p;	/* atom or string bytes, not NUL-terminated */
	size_t len;
	struct imap_node *child;	/* LIST: its first element */
	struct imap_node *next;		/* the next element of the enclosing list */
	size_t nchild;
};

enum imap_resp_kind { IMAP_RESP_TAGGED, IMAP_RESP_UNTAGGED, IMAP_RESP_CONT };

enum imap_status { IMAP_ST_NONE, IMAP_ST_OK, IMAP_ST_NO, IMAP_ST_BAD, IMAP_ST_BYE,
		   IMAP_ST_PREAUTH };

struct imap_resp {
	enum imap_resp_kind kind;
	char tag[32];		/* TAGGED only */
	enum imap_status status;	/* OK/NO/BAD/BYE/PREAUTH responses */
	char code[128];		/* the response code's first atom, upper case: "UIDVALIDITY" */
	const char *code_arg;	/* the rest of the code up to ']' ("" when none) */
	size_t code_arg_len;
	const char *text;	/* human-readable text after the code */
	size_t text_len;
	uint32_t number;	/* "* 12 FETCH": 12 */
	bool has_number;
	char name[32];		/* upper case: FETCH, EXISTS, LIST, CAPABILITY, ... */
	struct imap_node args;	/* LIST node holding the data after name */
	/* private */
	struct imap_node *blocks[IMAP_MAX_NODES / IMAP_NODE_BLOCK];
	size_t nused;
	char *unq;		/* unescaped quoted strings */
	size_t unq_len;
};

/*
 * How many bytes of data (which starts at a response) form one complete response: 0 when more
 * is needed, -1 when a line is longer than max_line or a literal longer than max_literal (the
 * connection must be dropped). Handles "{N}" and "~{N}" literals.
 */
long long imap_resp_need(const char *data, size_t len, size_t max_line, size_t max_literal);

/*
 * For streaming a message body: when data starts with the first line of an untagged FETCH
 * response that ends in the literal of its BODY[] item ("* 3 FETCH (UID 7 BODY[] {N}"), the
 * length of that line through its LF, with N in *lit (the literal's bytes follow). 0 when
 * the line is not complete yet, -1 when it is longer than max_line, -2 when the data starts
 * with any other response (to be read whole with imap_resp_need).
 */
long long imap_stream_head(const char *data, size_t len, size_t max_line, uint64_t *lit);

/* Parse one complete response. false with a static *err when malformed. */
bool imap_resp_parse(const char *data, size_t len, struct imap_resp *r, const char **err);
void imap_resp_free(struct imap_resp *r);

/* Helpers over the tree. */
bool imap_node_is(const struct imap_node *n, const char *atom);	/* case-insensitive */
bool imap_node_u32(const struct imap_node *n, uint32_t *v);
bool imap_node_u64(const struct imap_node *n, uint64_t *v);
/* In a FETCH list (name value name value ...), the value of name; NULL when absent. */
const struct imap_node *imap_fetch_item(const struct imap_node *list, const char *name);
/* Is atom name (case-insensitive) one of the space-separated words in capability text? */
bool imap_words_has(const char *words, size_t len, const char *word);

#endif
