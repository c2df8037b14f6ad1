/*
 * commands: the subcommands of the hcpipe binary. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit code: 0 success, 1 failure, 2 usage.
 */
#ifndef HCPIPE_COMMANDS_H
#define HCPIPE_COMMANDS_H

/* `hcpipe serve`: the HTTP service (server/serve.c). */
int serve_main(int argc, char **argv);

/* `hcpipe run`: one job without the server, result on stdout (server/cmd_run.c). */
int run_main(int argc, char **argv);

#endif
