/*
 * main.c: the hcpipe binary's entry point. It only dispatches to a subcommand (commands.h,
 * aws/cli.h) and answers --help and --version.
 */
#include <stdio.h>
#include <string.h>

#include "aws/cli.h"
#include "server/commands.h"

static const char usage[] =
    "Usage: hcpipe <command> [options]\n"
    "\n"
    "Turns uploads of healthcare-facility JSON into analytics results.\n"
    "\n"
    "Commands:\n"
    "  serve     run the HTTP service (see `hcpipe serve --help`)\n"
    "  run       run one query without the server, result on stdout (`hcpipe run --help`)\n"
    "  aws       AWS client tools, e.g. `hcpipe aws sigv4-case` (`hcpipe aws --help`)\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help and exit\n"
    "  -V, --version  show the version and exit\n";

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("hcpipe %s\n", HCPIPE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0)
        return serve_main(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "aws") == 0)
        return aws_cli_main(argc - 1, argv + 1);
    fprintf(stderr, "hcpipe: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
