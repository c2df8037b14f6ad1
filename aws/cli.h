/*
 * cli: `hcpipe aws ...`, developer commands of the aws/ module (e.g. `aws sigv4-case`).
 */
#ifndef HCPIPE_AWS_CLI_H
#define HCPIPE_AWS_CLI_H

#include "aws/sigv4.h"

/* Runs `hcpipe aws <argv[1]> ...` (argv[0] is "aws"). Returns the exit code (2 for usage). */
int aws_cli_main(int argc, char **argv);

/* Reads one SigV4 case folder and signs it. Two layouts are understood: aws-c-auth's
 * (context.json + request.txt, LF line ends) and the AWS CLI captures (request.http, CRLF, with
 * the credentials of shared/testdata/aws-captures/README.md; the time, region, service, access
 * key and signed-header list are taken from the captured X-Amz-Date and Authorization headers,
 * the service otherwise from X-Amz-Target (athena) or else s3). A context.json, when present,
 * overrides what the request says. Returns 0 and fills *out (free with sigv4_result_free()),
 * or -1 with a one-line reason on stderr. */
int aws_cli_sign_case(const char *dir, struct sigv4_result *out);

#endif
