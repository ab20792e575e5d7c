/*
 * test_relay_data.c - line ends in message data: splitting at CRLF, bare LF and bare CR,
 * where the data ends, and dot-stuffing with CRLF normalisation on the way out.
 */
#include <string.h>

#include <event2/buffer.h>

#include "relay/relay_data.h"
#include "unit.h"

#define MAXLINE 40
#define SHORT 10

/*
 * Read text as a client's data would be read: every line, the end, what is stored (with
 * CRLF line ends). Returns the number of octets of text used up to the end (0: no end).
 */
static size_t read_data(const char *text, size_t n, char *stored, size_t cap, unsigned *bare)
{
	struct data_in d;
	size_t off = 0, slen = 0;

	data_in_init(&d);
	while (off < n) {
		size_t len = 0, used = 0;
		enum data_eol eol = DATA_EOL_CRLF;
		enum data_split_rc rc = data_split(text + off, n - off, MAXLINE, &len, &used, &eol);
		const char *line = text + off;

		if (rc == DATA_SPLIT_MORE)
			break;
		off += used;
		if (rc == DATA_SPLIT_LONG)
			continue;
		if (data_in_line(&d, &line, &len, eol)) {
			stored[slen] = '\0';
			*bare = d.bare;
			return off;
		}
		if (slen + len + 2 < cap) {
			memcpy(stored + slen, line, len);
			memcpy(stored + slen + len, "\r\n", 2);
			slen += len + 2;
		}
	}
	stored[slen] = '\0';
	*bare = d.bare;
	return 0;
}

static void test_split_line_ends(void)
{
	size_t len = 0, used = 0;
	enum data_eol eol = DATA_EOL_CRLF;

	CHECK(data_split("ab\r\ncd", 6, MAXLINE, &len, &used, &eol) == DATA_SPLIT_LINE);
	CHECK(len == 2 && used == 4 && eol == DATA_EOL_CRLF);
	CHECK(data_split("ab\ncd", 5, MAXLINE, &len, &used, &eol) == DATA_SPLIT_LINE);
	CHECK(len == 2 && used == 3 && eol == DATA_EOL_LF);
	CHECK(data_split("ab\rcd", 5, MAXLINE, &len, &used, &eol) == DATA_SPLIT_LINE);
	CHECK(len == 2 && used == 3 && eol == DATA_EOL_CR);
	CHECK(data_split("ab\r\r\n", 5, MAXLINE, &len, &used, &eol) == DATA_SPLIT_LINE);
	CHECK(len == 2 && used == 3 && eol == DATA_EOL_CR);
	/* a CR at the end may be the first half of a CRLF */
	CHECK(data_split("ab\r", 3, MAXLINE, &len, &used, &eol) == DATA_SPLIT_MORE);
	CHECK(data_split("abc", 3, MAXLINE, &len, &used, &eol) == DATA_SPLIT_MORE);
	CHECK(data_split("", 0, MAXLINE, &len, &used, &eol) == DATA_SPLIT_MORE);
}

static void test_split_limits(void)
{
	size_t len = 0, used = 0;
	enum data_eol eol = DATA_EOL_CRLF;

	/* exactly max octets, then CRLF: a line */
	CHECK(data_split("0123456789\r\n", 12, SHORT, &len, &used, &eol) == DATA_SPLIT_LINE);
	CHECK(len == 10 && used == 12 && eol == DATA_EOL_CRLF);
	/* max + 1 octets: overlong, the line end is left for the next call */
	CHECK(data_split("0123456789a\r\n", 13, SHORT, &len, &used, &eol) == DATA_SPLIT_LONG);
	CHECK(used == 11);
	CHECK(data_split("0123456789abcdef", 16, SHORT, &len, &used, &eol) == DATA_SPLIT_LONG);
	CHECK(used == 12);
	CHECK(data_split("0123456789", 10, SHORT, &len, &used, &eol) == DATA_SPLIT_MORE);
}

static void test_end_only_at_crlf_dot_crlf(void)
{
	char stored[256];
	unsigned bare = 9;
	static const char *const smuggle[] = {
		"text\r.\r\nMAIL FROM:<x@evil.example>\r\n",
		"text\r.\rMAIL FROM:<x@evil.example>\r\n",
		"text\n.\nMAIL FROM:<x@evil.example>\r\n",
		"text\r\n.\nMAIL FROM:<x@evil.example>\r\n",
		"text\n.\r\nMAIL FROM:<x@evil.example>\r\n",
	};

	CHECK(read_data(".\r\n", 3, stored, sizeof(stored), &bare) == 3);
	CHECK_STREQ(stored, "");
	CHECK(read_data("a\r\n.\r\nrest", 10, stored, sizeof(stored), &bare) == 6);
	CHECK_STREQ(stored, "a\r\n");
	CHECK(bare == 0);
	for (size_t i = 0; i < sizeof(smuggle) / sizeof(smuggle[0]); i++) {
		char text[128];
		size_t n = (size_t)snprintf(text, sizeof(text), "%s.\r\n", smuggle[i]);

		/* the fake end is content; the real one ends the data, and everything is CRLF */
		CHECK(read_data(text, n, stored, sizeof(stored), &bare) == n);
		CHECK(bare >= 1);
		CHECK(strstr(stored, "MAIL FROM:<x@evil.example>\r\n") != NULL);
		CHECK(strncmp(stored, "text\r\n", 6) == 0);
	}
}

static void test_unstuffing(void)
{
	char stored[256];
	unsigned bare = 0;

	CHECK(read_data("..x\r\n.\r\n", 8, stored, sizeof(stored), &bare) == 8);
	CHECK_STREQ(stored, ".x\r\n");
	CHECK(read_data("a\r.\r\n.\r\n", 8, stored, sizeof(stored), &bare) == 8);
	CHECK_STREQ(stored, "a\r\n\r\n");
	CHECK(bare == 1);
}

/* Stuff text in chunks of step octets; the output as a string. */
static void stuff(const char *text, size_t step, char *res, size_t cap)
{
	struct evbuffer *out = evbuffer_new();
	struct data_out o;
	size_t n = strlen(text), len;

	data_out_init(&o);
	for (size_t off = 0; off < n; off += step)
		data_out_stuff(&o, out, text + off, n - off < step ? n - off : step);
	data_out_end(&o, out);
	len = evbuffer_get_length(out);
	if (len >= cap)
		len = cap - 1;
	evbuffer_remove(out, res, len);
	res[len] = '\0';
	evbuffer_free(out);
}

static void test_stuff_normalises(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ ".a\r\n.\r\n", "..a\r\n..\r\n.\r\n" },
		{ "text\r.\r\nMAIL", "text\r\n..\r\nMAIL\r\n.\r\n" },
		{ "text\r.\r", "text\r\n..\r\n.\r\n" },
		{ "text\n.\n", "text\r\n..\r\n.\r\n" },
		{ "text\r\n.\n", "text\r\n..\r\n.\r\n" },
		{ "text\n.\r\n", "text\r\n..\r\n.\r\n" },
		{ "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n" },
		{ "a\n\rb\r", "a\r\n\r\nb\r\n.\r\n" },
	};
	char res[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= 5; step++) {
			stuff(cases[i].in, step, res, sizeof(res));
			CHECK_STREQ(res, cases[i].out);
		}
		stuff(cases[i].in, 1000, res, sizeof(res));
		CHECK_STREQ(res, cases[i].out);
	}
}

/*
 * The stuffing as it was first written, one octet at a time: the reference that the
 * faster scan must match for any input and any way of cutting it into chunks.
 */
static void stuff_reference(struct data_out *o, struct evbuffer *out, const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (o->cr) {
			o->cr = false;
			o->bol = true;
			evbuffer_add(out, "\r\n", 2);
			start = i;
			if (c == '\n') {
				start = i + 1;
				continue;
			}
		}
		if (c == '.' && o->bol) {
			evbuffer_add(out, p + start, i - start);
			evbuffer_add(out, ".", 1);
			start = i;
			o->bol = false;
		} else if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			i++;
			o->bol = true;
		} else if (c == '\r' || c == '\n') {
			evbuffer_add(out, p + start, i - start);
			start = i + 1;
			if (c == '\r') {
				o->cr = true;
			} else {
				evbuffer_add(out, "\r\n", 2);
				o->bol = true;
			}
		} else {
			o->bol = false;
		}
	}
	evbuffer_add(out, p + start, n - start);
}

static bool same_output(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	return n == evbuffer_get_length(b) &&
	       (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

/* Random texts of CR, LF, dots and letters, in random chunks: the same as the reference. */
static void test_stuff_matches_reference(void)
{
	static const char alphabet[] = "\r\n.ab";
	unsigned seed = 12345, mismatches = 0, differ_control = 0;

	for (int round = 0; round < 3000; round++) {
		char text[200];
		size_t n = (size_t)(rand_r(&seed) % sizeof(text)), step;
		struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
		struct data_out oa, ob;

		for (size_t i = 0; i < n; i++)
			text[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		step = (size_t)(rand_r(&seed) % 17) + 1;
		data_out_init(&oa);
		data_out_init(&ob);
		for (size_t off = 0; off < n; off += step) {
			size_t len = n - off < step ? n - off : step;

			data_out_stuff(&oa, a, text + off, len);
			stuff_reference(&ob, b, text + off, len);
		}
		data_out_end(&oa, a);
		data_out_end(&ob, b);
		mismatches += !same_output(a, b);
		/* the control: the comparison sees a difference when there is one */
		evbuffer_add(b, "x", 1);
		differ_control += !same_output(a, b);
		evbuffer_free(a);
		evbuffer_free(b);
	}
	CHECK(mismatches == 0);
	CHECK(differ_control == 3000);
}

TEST_MAIN(test_split_line_ends, test_split_limits, test_end_only_at_crlf_dot_crlf,
	  test_unstuffing, test_stuff_normalises, test_stuff_matches_reference)
