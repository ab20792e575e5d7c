/*
 * test_mig_cred.c - credentials from a descriptor: one line, bounded, CR LF, empty, too long;
 * from a file: only one that no other user may read.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A temporary file with text and mode; its path in path (PATH_MAX). */
static void file_with(char *path, const char *text, mode_t mode)
{
	int fd;

	strcpy(path, "/tmp/pw-unit-cred-XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

static void test_file(void)
{
	char path[64], *err = NULL;
	struct mig_cred *c;
	static const mode_t refused[] = { 0644, 0640, 0604, 0602, 0620, 0660 };

	file_with(path, "Master-Pw-1\nrest\n", 0600);
	c = mig_cred_from_file(path, &err);
	CHECK_STREQ(c ? c->secret : NULL, "Master-Pw-1");
	mig_cred_free(c);
	CHECK(chmod(path, 0400) == 0);
	c = mig_cred_from_file(path, &err);
	CHECK(c != NULL);
	mig_cred_free(c);
	/* any permission for the group or others is refused; the error names the file and
	 * what to do, never the content */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		CHECK(chmod(path, refused[i]) == 0);
		err = NULL;
		CHECK(mig_cred_from_file(path, &err) == NULL);
		CHECK(err != NULL && strstr(err, path) != NULL && strstr(err, "chmod 600") != NULL);
		CHECK(err == NULL || strstr(err, "Master-Pw") == NULL);
		free(err);
	}
	unlink(path);
	err = NULL;
	CHECK(mig_cred_from_file(path, &err) == NULL && err != NULL);	/* gone */
	free(err);
	file_with(path, "\n", 0600);
	err = NULL;
	CHECK(mig_cred_from_file(path, &err) == NULL && err != NULL && strstr(err, "empty"));
	free(err);
	unlink(path);
	err = NULL;
	CHECK(mig_cred_from_file("/tmp", &err) == NULL && err != NULL);	/* not a file */
	free(err);
}

TEST_MAIN(test_fd_line, test_fd_refusals, test_parse_fd, test_file)
