/*
 * cli_tls_check.c - "postwarden tls-check" (being written).
 */
#include "cli.h"

int cli_tls_check(struct cli *cli, int argc, char **argv)
{
	fprintf(stderr, "postwarden: tls-check is not available yet\n");
	return 1;
}
