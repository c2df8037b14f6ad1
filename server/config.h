/*
 * config: the service's settings, from flags and HCPIPE_* environment variables (flags win).
 *
 * config_load() validates every value and names the setting in its error message, so a bad value
 * stops the program at start.
 */
#ifndef HCPIPE_CONFIG_H
#define HCPIPE_CONFIG_H

#include <stddef.h>

struct config {
    char *listen;            /* "host:port", default 127.0.0.1:8080 */
    char *data_dir;          /* default ./var */
    char *engine;            /* "local" (default) | "athena" */
    int workers;             /* worker threads, default 2 */
    int job_timeout_s;       /* default 900 */
    int max_attempts;        /* default 5 */
    char *log_level;         /* default info */
    char **seeds;            /* sources (s3://bucket/key) loaded by jobs queued at start */
    size_t n_seeds;
    int insecure_dev_events; /* accept /events without a credential (development only) */
    size_t max_body;         /* request body cap in bytes, default 1 MiB */
};

/* Fills `cfg` from argv (the arguments after "serve") and the environment. On a bad value or
 * unknown flag, writes a message naming the setting into err (errlen bytes) and returns -1;
 * returns 1 when --help was given (usage already printed), 0 otherwise. */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Frees what config_load() allocated. */
void config_free(struct config *cfg);

/* The usage text of `hcpipe serve` (static). */
const char *config_usage(void);

#endif
