/*
 * testdata.h: finds ../shared/testdata for unit tests: $HCPIPE_SHARED/testdata when set, else
 * <ancestor>/shared/testdata for the nearest ancestor of the working directory that has one
 * (tests run from the repository root; CI lays shared/ beside the checkout, worktrees deeper).
 */
#ifndef HCPIPE_TESTS_TESTDATA_H
#define HCPIPE_TESTS_TESTDATA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fills out with the testdata folder; returns 0, or -1 when none is found. */
static inline int testdata_dir(char *out, size_t outlen)
{
    const char *env = getenv("HCPIPE_SHARED");
    char base[2048];
    struct stat st;

    if (env) {
        snprintf(out, outlen, "%s/testdata", env);
        return stat(out, &st) == 0 ? 0 : -1;
    }
    if (!getcwd(base, sizeof base))
        return -1;
    for (;;) {
        char *slash;

        snprintf(out, outlen, "%s/shared/testdata", base);
        if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        slash = strrchr(base, '/');
        if (!slash || slash == base)
            return -1;
        *slash = '\0';
    }
}

#endif
