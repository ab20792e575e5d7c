/*
 * cli_serve.c - "postwarden serve" (being written).
 */
#include "cli.h"

int cli_serve(struct cli *cli, int argc, char **argv)
{
	fprintf(stderr, "postwarden: serve is not available yet\n");
	return 1;
}
