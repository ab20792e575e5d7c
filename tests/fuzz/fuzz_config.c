/*
 * fuzz_config.c - libFuzzer target: the INI reader with postwarden's real key tables.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Build the sections the way config.c does, by loading defaults through a temp struct. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/pw-fuzz-conf-XXXXXX";
	struct pw_config cfg;
	char *err = NULL;
	int fd;

	if (size > CONF_MAX_FILE)
		return 0;
	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	if (config_load(&cfg, path, &err) < 0 && err == NULL)
		abort();	/* every failure must say why */
	free(err);
	config_free(&cfg);
	unlink(path);
	return 0;
}
