/*
 * test_mig_cred.c - credentials from a descriptor: one line, bounded, CR LF, empty, too long.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "migrate/mig_cred.h"
#include "unit.h"

/* A pipe holding text; returns its read end. */
static int pipe_with(const char *text, size_t len)
{
	int p[2];

	if (pipe(p) != 0)
		return -1;
	if (write(p[1], text, len) != (ssize_t)len)
		return -1;
	close(p[1]);
	return p[0];
}

static void test_fd_line(void)
{
	const char *err = NULL;
	int fd = pipe_with("s3cr3t pass\nnext line\n", 22);
	struct mig_cred *c = mig_cred_from_fd(fd, &err);
	char rest[16] = { 0 };

	CHECK(c != NULL);
	CHECK(c && c->len == 11);
	CHECK_STREQ(c ? c->secret : NULL, "s3cr3t pass");
	/* only the first line is consumed */
	CHECK(read(fd, rest, sizeof(rest) - 1) == 10);
	CHECK(strcmp(rest, "next line\n") == 0);
	mig_cred_free(c);
	close(fd);

	fd = pipe_with("crlf\r\n", 6);
	c = mig_cred_from_fd(fd, &err);
	CHECK_STREQ(c ? c->secret : NULL, "crlf");
	mig_cred_free(c);
	close(fd);

	fd = pipe_with("no-newline", 10);
	c = mig_cred_from_fd(fd, &err);
	CHECK_STREQ(c ? c->secret : NULL, "no-newline");
	mig_cred_free(c);
	close(fd);
}

static void test_fd_refusals(void)
{
	const char *err = NULL;
	static char big[MIG_CRED_MAX + 2];
	int fd = pipe_with("\n", 1);

	CHECK(mig_cred_from_fd(fd, &err) == NULL && err != NULL);
	close(fd);

	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	fd = pipe_with(big, sizeof(big));
	err = NULL;
	CHECK(mig_cred_from_fd(fd, &err) == NULL && err != NULL);
	close(fd);

	/* the control: exactly the maximum is accepted */
	big[MIG_CRED_MAX] = '\n';
	fd = pipe_with(big, MIG_CRED_MAX + 1);
	struct mig_cred *c = mig_cred_from_fd(fd, &err);
	CHECK(c != NULL && c->len == MIG_CRED_MAX);
	mig_cred_free(c);
	close(fd);
	mig_cred_free(NULL);
}

static void test_parse_fd(void)
{
	const char *err = NULL;

	CHECK(mig_cred_parse_fd("0", &err) == 0);
	CHECK(mig_cred_parse_fd("1", &err) == -1);
	CHECK(mig_cred_parse_fd("2", &err) == -1);
	CHECK(mig_cred_parse_fd("x", &err) == -1);
	CHECK(mig_cred_parse_fd("", &err) == -1);
	CHECK(mig_cred_parse_fd("-3", &err) == -1);
	CHECK(mig_cred_parse_fd("999", &err) == -1);	/* not open */
}

TEST_MAIN(test_fd_line, test_fd_refusals, test_parse_fd)
