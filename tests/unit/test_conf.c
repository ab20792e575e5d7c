/*
 * test_conf.c - the INI reader and postwarden's key tables: defaults, types, errors with FILE:LINE.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"
#include "unit.h"

struct sample {
	char *name;
	bool flag;
	uint64_t count;
	int64_t wait;
	uint64_t size;
	struct conf_hostport addr;
	struct conf_cidrs nets;
	char *lang;
};

static const char *const langs[] = { "en", "de", NULL };

static const struct conf_key sample_keys[] = {
	{ "name", CONF_STRING, "x", offsetof(struct sample, name), 0, 0, NULL, "" },
	{ "flag", CONF_BOOL, "off", offsetof(struct sample, flag), 0, 0, NULL, "" },
	{ "count", CONF_UINT, "5", offsetof(struct sample, count), 1, 10, NULL, "" },
	{ "wait", CONF_DURATION, "1m", offsetof(struct sample, wait), 0, 0, NULL, "" },
	{ "size", CONF_SIZE, "1K", offsetof(struct sample, size), 0, 0, NULL, "" },
	{ "addr", CONF_HOSTPORT, "127.0.0.1:25", offsetof(struct sample, addr), 0, 0, NULL, "" },
	{ "nets", CONF_CIDRS, "127.0.0.0/8", offsetof(struct sample, nets), 0, 0, NULL, "" },
	{ "lang", CONF_ENUM, "en", offsetof(struct sample, lang), 0, 0, langs, "" },
	{ NULL, 0, NULL, 0, 0, 0, NULL, NULL },
};

/* Parse text into a fresh sample; returns the error or NULL. */
static char *parse(const char *text, struct sample *s)
{
	struct conf_section sec = { "s", sample_keys, s };
	char *err = NULL;

	memset(s, 0, sizeof(*s));
	conf_parse(text, strlen(text), "t.conf", &sec, 1, &err);
	return err;
}

static void release(struct sample *s)
{
	struct conf_section sec = { "s", sample_keys, s };

	conf_release(&sec, 1);
}

static void test_defaults_apply(void)
{
	struct sample s;
	char *err = parse("", &s);

	CHECK(err == NULL);
	CHECK_STREQ(s.name, "x");
	CHECK(s.flag == false);
	CHECK(s.count == 5);
	CHECK(s.wait == 60);
	CHECK(s.size == 1024);
	CHECK_STREQ(s.addr.host, "127.0.0.1");
	CHECK(s.addr.port == 25);
	CHECK(s.nets.n == 1);
	CHECK_STREQ(s.lang, "en");
	release(&s);
}

static void test_values_parse(void)
{
	struct sample s;
	char *err = parse("# comment\n[s]\nname = hello world \nflag=yes\ncount = 10\nwait = 2h\n"
			  "size = 50M\naddr = [::1]:10025\nnets = 10.0.0.0/8, ::1/128 192.168.1.1\n"
			  "lang = de\n", &s);

	CHECK(err == NULL);
	CHECK_STREQ(s.name, "hello world");
	CHECK(s.flag);
	CHECK(s.count == 10);
	CHECK(s.wait == 7200);
	CHECK(s.size == 50ULL * 1024 * 1024);
	CHECK_STREQ(s.addr.host, "::1");
	CHECK(s.addr.port == 10025);
	CHECK(s.nets.n == 3);
	CHECK_STREQ(s.lang, "de");
	release(&s);
}

/* Each bad input must name the file, the line and what is wrong. */
static void test_errors_name_file_and_line(void)
{
	static const struct { const char *text, *expect; } cases[] = {
		{ "[s]\nbogus = 1\n", "t.conf:2: unknown key \"bogus\" in section [s]" },
		{ "[x]\n", "t.conf:1: unknown section [x]" },
		{ "name = 1\n", "t.conf:1: key \"name\" appears before any [section]" },
		{ "[s]\ncount = 11\n", "t.conf:2: [s] count: \"11\" is not a number between 1 and 10" },
		{ "[s]\n\nflag = maybe\n", "t.conf:3: [s] flag: \"maybe\" is not a boolean: use on or off" },
		{ "[s]\nwait = 5 minutes\n", "t.conf:2: [s] wait: \"5 minutes\" is not a duration (like 30s, 10m, 2h, 5d) in the allowed range" },
		{ "[s]\nlang = fr\n", "t.conf:2: [s] lang: \"fr\" is not one of the allowed values" },
		{ "[s]\nnets = 10.0.0.0/33\n", "t.conf:2: [s] nets: \"10.0.0.0/33\" is not a network in CIDR notation (like 127.0.0.0/8)" },
		{ "[s]\nname = a\nname = b\n", "t.conf:3: key \"name\" in section [s] is set twice" },
		{ "[s]\njust text\n", "t.conf:2: expected \"key = value\" or \"[section]\"" },
		{ "[s\n", "t.conf:1: a section header must look like [name]" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sample s;
		char *err = parse(cases[i].text, &s);
		CHECK_STREQ(err, cases[i].expect);
		free(err);
		release(&s);
	}
}

static void test_postwarden_defaults(void)
{
	struct pw_config cfg;
	char *err = NULL;
	FILE *f = fopen("/nonexistent-dir/x.conf", "r");

	CHECK(f == NULL);
	CHECK(config_load(&cfg, "/nonexistent-dir/x.conf", &err) < 0);
	CHECK(err != NULL && strstr(err, "cannot open") != NULL);
	free(err);
	config_free(&cfg);
}

/* Load text as a postwarden configuration file; returns config_load's result. */
static int load_text(const char *text, struct pw_config *cfg, char **err)
{
	char path[] = "/tmp/pw-conf-XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	*err = NULL;
	rc = config_load(cfg, path, err);
	unlink(path);
	return rc;
}

static void test_ctmon_watch_and_pins(void)
{
	struct pw_config cfg;
	char *err;

	/* U-labels become A-labels, case and trailing dots go, "." keeps its meaning */
	CHECK(load_text("[server]\nhostname = mx.example.net\n[ctmon]\n"
			"watch = Bücher.Example., .Example.ORG\n"
			"expected_keys = vGe27eA8FPROpX8rojXrZqBJpvnBV3xnkaSzeMEm29Q=, "
			"BC67B6EDE03C14F44EA57F2BA235EB66A049A6F9C1577C6791A4B378C126DBD4\n",
			&cfg, &err) == 0);
	CHECK_STREQ(cfg.ctmon.watch, "xn--bcher-kva.example, .example.org");
	/* the same key given as base64 and as hex */
	CHECK_STREQ(cfg.ctmon.expected_keys,
		    "bc67b6ede03c14f44ea57f2ba235eb66a049a6f9c1577c6791a4b378c126dbd4, "
		    "bc67b6ede03c14f44ea57f2ba235eb66a049a6f9c1577c6791a4b378c126dbd4");
	config_free(&cfg);
	/* default: the key directory's zones with what is below them, and the hostname */
	CHECK(load_text("[server]\nhostname = MX.example.net\n[keydir]\n"
			"zones = example.org, example.com\n", &cfg, &err) == 0);
	CHECK_STREQ(cfg.ctmon.watch, ".example.org, .example.com, mx.example.net");
	config_free(&cfg);
	static const char *const bad[][2] = {
		{ "[ctmon]\nwatch = exa mple.org\n", "watch" },
		{ "[ctmon]\nwatch = -x.example.org\n", "watch" },
		{ "[ctmon]\nexpected_keys = abcd\n", "expected_keys" },
		{ "[ctmon]\nalert_to = nobody\n", "alert_to" },
		{ "[ctmon]\nwebhook = http://hooks.example/x\n", "webhook" },
		{ "[ctmon]\nlog_list = ftp://lists.example/x.json\n", "log_list" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(load_text(bad[i][0], &cfg, &err) < 0);
		CHECK(err != NULL && strstr(err, bad[i][1]) != NULL);
		free(err);
		config_free(&cfg);
	}
	/* plain http only where tests allow private addresses */
	CHECK(load_text("[ctmon]\nallow_private = on\nwebhook = http://127.0.0.1:9/x\n",
			&cfg, &err) == 0);
	config_free(&cfg);
}

TEST_MAIN(test_defaults_apply, test_values_parse, test_errors_name_file_and_line,
	  test_postwarden_defaults, test_ctmon_watch_and_pins)
