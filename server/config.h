/*
 * config: the service's settings, from flags and HCPIPE_* environment variables (flags win).
 *
 * config_load() validates every value and names the setting in its error message, so a bad value
 * stops the program at start. The Athena engine's settings are the exception: config_load()
 * accepts their flags (engine_athena_option()) and collects their text, and the engine checks
 * them (config_athena_text(), engine_athena_settings_load()).
 */
#ifndef HCPIPE_CONFIG_H
#define HCPIPE_CONFIG_H

#include <stddef.h>

struct config {
    char *listen;      /* "host:port" as given, default 127.0.0.1:8080 */
    char *listen_host; /* the host part without brackets, e.g. "127.0.0.1" or "::1" */
    int listen_port;   /* 0..65535 (0: any free port) */
    int listen_ipv6;   /* 1 when listen_host is an IPv6 address */
    char *data_dir;    /* default ./var */
    char *engine;      /* "local" (default) | "athena" */
    int workers;       /* worker threads, default 2 */
    int job_timeout_s; /* default 900 */
    int max_attempts;  /* default 5 */
    char *log_level;   /* default info */
    char **seeds;      /* sources (s3://bucket/key) loaded by jobs queued at start */
    size_t n_seeds;
    int insecure_dev_events; /* accept /events without a credential (development only) */
    size_t max_body;         /* request body cap in bytes, default 1 MiB */
    /* POST /events (secrets are never logged nor echoed in error messages) */
    char *webhook_api_key; /* expected API key value, NULL when unset (secret) */
    char *webhook_header;  /* header carrying the API key, default "x-api-key" */
    char *webhook_basic;   /* "user:password" for Basic auth, NULL when unset (secret) */
    char **event_buckets;  /* buckets whose events are accepted; none = any */
    size_t n_event_buckets;
    char *event_prefix;    /* key prefix events must have, default "" */
    char **event_suffixes; /* key suffixes (one must match), default .json .jsonl .ndjson; none
                              = any */
    size_t n_event_suffixes;
    char **event_queries; /* catalog queries an Object Created event queues, default
                             accredited_by_state */
    size_t n_event_queries;
    int event_scope; /* enum job_scope of those jobs, default SCOPE_DATASET */
    /* The edge: HTTPS, API tokens (secret), connection limits */
    char *tls_cert;             /* PEM certificate chain file (HTTPS), or NULL for plain HTTP */
    char *tls_key;              /* PEM private key file; set exactly when tls_cert is */
    char *api_tokens;           /* token list text (secret; server/auth.h format), or NULL */
    char *api_tokens_file;      /* file holding more of the token list, or NULL */
    int metrics_auth;           /* 1: GET /metrics needs a read token too */
    int max_connections;        /* concurrent connections, default 256 */
    int max_connections_per_ip; /* concurrent connections from one IP, default 32; 0 = no cap */
    int connection_timeout_s;   /* a connection idle this long is closed, default 30 */
    int request_timeout_s;      /* a request's headers and body must arrive within this, 30 */
    int http_threads;           /* HTTP threads in the pool, default 4; 0 = one per connection */
    /* Objects and results */
    int source_s3;    /* --source s3: the local engine reads objects from S3 (default folder) */
    char *output_uri; /* s3://bucket/prefix/ each result is also published to, or NULL */
    /* The Athena engine's settings (engine_athena_option(i)), collected here and checked by
     * engine_athena_settings_load() through config_athena_text() */
    char **athena_texts; /* per option: its flag's text, else its variable's, else NULL */
    size_t n_athena_texts;
};

/* Fills `cfg` from argv (the arguments after "serve") and the environment. On a bad value or
 * unknown flag, writes a message naming the setting into err (errlen bytes), e.g.
 * `invalid HCPIPE_WORKERS "abc": expected an integer 1..64`, and returns -1; returns 1 when
 * --help was given (nothing printed; the caller prints config_usage()), 0 otherwise. In every
 * case `cfg` must be released with config_free(). */
int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* The text of the Athena engine setting whose flag is `flag` (one of engine_athena_option()):
 * the flag's value when it was given, else its environment variable's, else NULL. Borrowed from
 * cfg. The text is not checked here: engine_athena_settings_load() checks it. */
const char *config_athena_text(const struct config *cfg, const char *flag);

/* Frees what config_load() allocated. */
void config_free(struct config *cfg);

/* The usage text of `hcpipe serve` (static). */
const char *config_usage(void);

/* Checks an "s3://bucket/key" source: bucket 3..63 of [a-z0-9.-] starting and ending with a
 * letter or digit, key 1..1024 bytes with no NUL and no "." or ".." segment. Returns 0, or -1
 * with the reason (static text) in *why. */
int config_check_source(const char *src, const char **why);

#endif
