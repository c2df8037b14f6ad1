/* server/serve.c: placeholder until its module lands. */
#include <stdio.h>

#include "server/commands.h"

int serve_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("hcpipe: not implemented yet\n", stderr);
    return 1;
}
