/*
 * vcard.h - what the address book migration needs of vCards (RFC 2426 3.0, RFC 6350 4.0):
 * splitting a file into cards, reading a few properties of a card, and writing new
 * vCard 4.0 cards (from CSV exports and Microsoft Graph contacts).
 *
 * A card read from a source is never rewritten: it is copied byte for byte. Reading only
 * looks at it (UID for the resource name, VERSION, KIND for counts).
 */
#ifndef PW_VCARD_H
#define PW_VCARD_H

#include <stdbool.h>
#include <stddef.h>

#define VCARD_MAX		(8 * 1024 * 1024)	/* one card (photos included) */
#define VCARD_FILE_MAX		(256 * 1024 * 1024)	/* one imported file */
#define VCARD_MAX_CARDS		100000

struct vcard_list {
	char **card;		/* each a whole BEGIN:VCARD..END:VCARD text with its line ends */
	size_t *len;
	size_t n;
};

/*
 * Split text into cards. Lines outside a card are ignored; a card that does not end, one
 * over VCARD_MAX, or nesting that is not a vCard's, is an error. 0, or -1 with *err.
 */
int vcard_split(const char *text, size_t len, struct vcard_list *out, const char **err);
void vcard_list_free(struct vcard_list *l);

/*
 * The unfolded value of the first property called name (case-insensitive, group prefix and
 * parameters ignored) in a card, as a new string; NULL when absent.
 */
char *vcard_get(const char *card, size_t len, const char *name);
/* Is it a group card (KIND:group, or Apple's X-ADDRESSBOOKSERVER-KIND:group)? */
bool vcard_is_group(const char *card, size_t len);

/*
 * A resource name for a card: its UID when that is a safe path segment, else the hex
 * SHA-256 of the card's bytes; ".vcf" added. The same card always gets the same name, so
 * a second run finds it (412) instead of adding it again.
 */
char *vcard_resource_name(const char *card, size_t len);

/* ---- writing vCard 4.0 ---------------------------------------------------------------- */

struct vcard_out;

struct vcard_out *vcard_out_new(void);
/* One property with its value escaped (backslash, comma, semicolon, newline). */
void vcard_out_text(struct vcard_out *v, const char *name, const char *value);
/* One structured property (N, ADR): n components, each escaped, joined by ';'. */
void vcard_out_struct(struct vcard_out *v, const char *name, const char *const *parts, size_t n);
/* Drop an unfinished card. */
void vcard_out_free(struct vcard_out *v);
/* Is there anything besides BEGIN/VERSION? */
bool vcard_out_empty(const struct vcard_out *v);
/*
 * Finish: UID (uid_hint, or a hash of the properties so that the same contact gives the
 * same card), FN (when missing, from fallback), END:VCARD; lines folded at 75 octets with
 * CRLF. Frees v; the caller frees the text.
 */
char *vcard_out_finish(struct vcard_out *v, const char *uid_hint, const char *fn_fallback,
		       size_t *len);

#endif
