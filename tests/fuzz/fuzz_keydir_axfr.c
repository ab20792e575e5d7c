/*
 * fuzz_keydir_axfr.c - arbitrary bytes as the messages of a zone transfer from the key
 * directory's DNS primary (keys sync), taken one by one as keydir_dns_axfr takes them off
 * the connection: without TSIG (every record reaches the callback) and with TSIG (every
 * message must carry a valid signature chained to the previous one).
 *
 * Input layout: TCP framing, a 2-byte big-endian length before each message (a short last
 * message takes what is left). The query's ID is taken from the first message, so that
 * messages get past the ID check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keydir/keydir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void record(void *arg, const char *owner, uint16_t type, const uint8_t *rdata, size_t len)
{
	if (owner[0] == '\0')
		abort();
	if (len > 0)
		(void)rdata[len - 1];
	(void)type;
	(*(size_t *)arg)++;
}

static void transfer(const struct keydir_conf *kc, const uint8_t *p, size_t n, const uint8_t *mac,
		     size_t mac_len)
{
	struct keydir_axfr x = { .mac = mac_len ? malloc(mac_len) : NULL, .mac_len = mac_len };
	size_t records = 0;
	int rc = 0;

	if (x.mac)
		memcpy(x.mac, mac, mac_len);
	if (n >= 4)
		x.id = (uint16_t)(p[2] << 8 | p[3]);
	while (rc == 0 && n >= 2) {
		size_t len = (size_t)p[0] << 8 | p[1];
		uint8_t *msg;
		char *err = NULL;

		p += 2;
		n -= 2;
		if (len > n)
			len = n;
		msg = malloc(len ? len : 1);	/* its own allocation, so ASan sees overreads */
		memcpy(msg, p, len);
		rc = keydir_dns_axfr_msg(kc, "keys.test", &x, msg, len, record, &records, &err);
		if ((rc < 0) != (err != NULL))
			abort();
		free(err);
		free(msg);
		p += len;
		n -= len;
	}
	free(x.mac);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[34] = { 0, 32, 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	struct keydir_conf plain = { .dns_server = { .host = "192.0.2.53" }, .tsig_name = "",
				     .tsig_secret = "" };
	struct keydir_conf tsig = { .dns_server = { .host = "192.0.2.53" },
				    .tsig_name = "pw-keydir", .tsig_algorithm = "hmac-sha256",
				    .tsig_secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" };

	if (size > 4 * 65537)
		return 0;
	transfer(&plain, data, size, NULL, 0);
	transfer(&tsig, data, size, mac, sizeof(mac));
	return 0;
}
