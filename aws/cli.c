/* aws/cli.c: placeholder until its module lands. */
#include <stdio.h>

#include "aws/cli.h"

int aws_cli_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("hcpipe: not implemented yet\n", stderr);
    return 1;
}
