/*
 * cli: `hcpipe aws ...`, developer commands of the aws/ module (e.g. `aws sigv4-case`).
 */
#ifndef HCPIPE_AWS_CLI_H
#define HCPIPE_AWS_CLI_H

/* Runs `hcpipe aws <argv[1]> ...` (argv[0] is "aws"). Returns the exit code (2 for usage). */
int aws_cli_main(int argc, char **argv);

#endif
