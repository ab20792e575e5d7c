/*
 * mig_cred.c - reading a migration's credentials without echo or from a descriptor, and
 * wiping them when done (see mig_cred.h for the rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "mig_cred.h"
#include "xmalloc.h"

struct mig_cred *mig_cred_from_string(const char *s, size_t len)
{
	struct mig_cred *c = xcalloc(1, sizeof(*c));

	c->secret = xmalloc(len + 1);
	memcpy(c->secret, s, len);
	c->secret[len] = '\0';
	c->len = len;
	return c;
}

void mig_cred_free(struct mig_cred *c)
{
	if (c == NULL)
		return;
	if (c->secret != NULL) {
		OPENSSL_cleanse(c->secret, c->len + 1);
		free(c->secret);
	}
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

/*
 * Read byte by byte up to the end of line, so that nothing after the line is taken from a
 * descriptor shared with other input. The scratch buffer is wiped whatever happens.
 */
static struct mig_cred *read_line(int fd, const char **err)
{
	char *line = xmalloc(MIG_CRED_MAX + 1);
	size_t len = 0;
	bool too_long = false;
	struct mig_cred *c = NULL;

	for (;;) {
		char ch;
		ssize_t n = read(fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = "cannot read the password descriptor";
			goto out;
		}
		if (n == 0 || ch == '\n')
			break;
		if (len == MIG_CRED_MAX) {
			too_long = true;
			continue;	/* drain the rest of the line, keep nothing */
		}
		line[len++] = ch;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (too_long)
		*err = "the password or token is longer than 8192 bytes";
	else if (len == 0)
		*err = "empty password or token";
	else
		c = mig_cred_from_string(line, len);
out:
	OPENSSL_cleanse(line, MIG_CRED_MAX + 1);
	free(line);
	return c;
}

struct mig_cred *mig_cred_from_fd(int fd, const char **err)
{
	return read_line(fd, err);
}

struct mig_cred *mig_cred_from_file(const char *path, char **err)
{
	struct stat st;
	struct mig_cred *c = NULL;
	const char *why = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	/* checked on the file opened, not on the name: no race with a rename */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		*err = xasprintf("%s is not a regular file", path);
	else if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		*err = xasprintf("%s may be read or changed by other users (mode %04o): make it "
				 "readable only by postwarden's user (chmod 600)", path,
				 (unsigned)(st.st_mode & 07777));
	else if (st.st_uid != geteuid())
		*err = xasprintf("%s belongs to another user (uid %u): it must be postwarden's "
				 "own (uid %u)", path, (unsigned)st.st_uid, (unsigned)geteuid());
	else if ((c = read_line(fd, &why)) == NULL)
		*err = xasprintf("%s: %s", path, why);
	close(fd);
	return c;
}

struct mig_cred *mig_cred_from_tty(const char *prompt, const char **err)
{
	struct termios old, quiet;
	struct mig_cred *c;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		*err = "no terminal to ask for the password: use --password-fd";
		return NULL;
	}
	if (tcgetattr(fd, &old) != 0) {
		close(fd);
		*err = "cannot switch off echo on the terminal: use --password-fd";
		return NULL;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
		close(fd);
		*err = "cannot switch off echo on the terminal: use --password-fd";
		return NULL;
	}
	c = read_line(fd, err);
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* the newline is cosmetic */
	}
	close(fd);
	return c;
}

int mig_cred_parse_fd(const char *arg, const char **err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < 0 || v > INT_MAX) {
		*err = "the descriptor must be a number";
		return -1;
	}
	if (v == 1 || v == 2) {
		*err = "descriptors 1 and 2 are output, not a password";
		return -1;
	}
	if (fcntl((int)v, F_GETFD) < 0) {
		*err = "that descriptor is not open";
		return -1;
	}
	return (int)v;
}
