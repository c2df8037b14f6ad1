/*
 * config.c: `hcpipe serve` settings.
 *
 * The settings are a table (flag, environment variable, setter). config_load() sets the
 * defaults, applies every HCPIPE_* variable that is set and whose flag is not given, then the
 * flags, so a flag always beats the environment (even a bad value there). Each setter validates its
 * text and says what it expected; the loader turns that into one message naming the setting as the
 * user wrote it (the flag or the variable).
 *
 * The Athena engine's settings are a second, smaller table owned by the engine
 * (engine_athena_option()): their flags are accepted and their text collected the same way, flag
 * over variable, into cfg->athena_texts, but the engine checks them when it loads them, so only
 * `--engine athena` needs them valid.
 */
#include "server/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/athena_sql.h"
#include "server/auth.h"
#include "server/engine.h"
#include "server/engine_athena.h"
#include "server/log.h"
#include "server/objstore.h"
#include "server/tls.h"

/* A setter stores `val` into cfg; on a bad value it returns -1 and writes what was expected. */
typedef int (*setter)(struct config *cfg, const char *val, char *why, size_t whylen);

struct setting {
    const char *flag; /* "--workers" */
    const char *env;  /* "HCPIPE_WORKERS" */
    int has_value;    /* 0 for a switch such as --insecure-dev-events */
    setter set;       /* applies the flag's value */
    setter set_env;   /* applies the variable's value, when it differs from `set` */
    int secret;       /* 1: the value is never echoed in an error message */
};

static int replace_str(char **slot, const char *val)
{
    char *copy = strdup(val);

    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    return 0;
}

/* Parses a whole decimal integer in [lo, hi]. */
static int parse_long(const char *val, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    if (!*val)
        return -1;
    errno = 0;
    v = strtol(val, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int set_int(int *slot, const char *val, long lo, long hi, char *why, size_t whylen)
{
    long v;

    if (parse_long(val, lo, hi, &v) != 0) {
        snprintf(why, whylen, "expected an integer %ld..%ld", lo, hi);
        return -1;
    }
    *slot = (int)v;
    return 0;
}

static int set_listen(struct config *cfg, const char *val, char *why, size_t whylen)
{
    char host[64];
    const char *colon, *port;
    unsigned char addr[16];
    int v6 = 0;
    long p;

    if (val[0] == '[') {
        const char *close = strchr(val, ']');
        if (!close || close[1] != ':' || (size_t)(close - val - 1) >= sizeof host)
            goto bad;
        memcpy(host, val + 1, (size_t)(close - val - 1));
        host[close - val - 1] = '\0';
        port = close + 2;
        v6 = 1;
    } else {
        colon = strrchr(val, ':');
        if (!colon || colon == val || (size_t)(colon - val) >= sizeof host)
            goto bad;
        memcpy(host, val, (size_t)(colon - val));
        host[colon - val] = '\0';
        port = colon + 1;
    }
    if (!v6 && strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1)
        goto bad;
    if (parse_long(port, 0, 65535, &p) != 0)
        goto bad;
    if (replace_str(&cfg->listen, val) || replace_str(&cfg->listen_host, host)) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    cfg->listen_port = (int)p;
    cfg->listen_ipv6 = v6;
    return 0;
bad:
    snprintf(why, whylen,
             "expected HOST:PORT with an IPv4 address, localhost or [IPv6] and a "
             "port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080");
    return -1;
}

static int set_data_dir(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (!*val) {
        snprintf(why, whylen, "expected a directory path");
        return -1;
    }
    return replace_str(&cfg->data_dir, val);
}

static int set_engine(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (strcmp(val, "local") != 0 && strcmp(val, "athena") != 0) {
        snprintf(why, whylen, "expected local or athena");
        return -1;
    }
    return replace_str(&cfg->engine, val);
}

static int set_workers(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->workers, val, 1, 64, why, whylen);
}

static int set_job_timeout(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->job_timeout_s, val, 1, 86400, why, whylen);
}

static int set_max_attempts(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->max_attempts, val, 1, 100, why, whylen);
}

static int set_log_level(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (log_level_parse(val) < 0) {
        snprintf(why, whylen, "expected debug, info, warn or error");
        return -1;
    }
    return replace_str(&cfg->log_level, val);
}

static int set_max_body(struct config *cfg, const char *val, char *why, size_t whylen)
{
    long v;

    if (parse_long(val, 1024, 64L << 20, &v) != 0) {
        snprintf(why, whylen, "expected a byte count 1024..67108864");
        return -1;
    }
    cfg->max_body = (size_t)v;
    return 0;
}

static int set_bool(int *slot, const char *val, char *why, size_t whylen)
{
    if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 || strcmp(val, "yes") == 0) {
        *slot = 1;
    } else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 || strcmp(val, "no") == 0 ||
               !*val) {
        *slot = 0;
    } else {
        snprintf(why, whylen, "expected 1/true/yes or 0/false/no");
        return -1;
    }
    return 0;
}

static int set_insecure(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_bool(&cfg->insecure_dev_events, val, why, whylen);
}

/* ---- the edge: HTTPS, API tokens, connection limits ---- */

/* An empty value unsets a file setting (so an empty variable means "none"). */
static int set_path_checked(char **slot, const char *val,
                            int (*check)(const char *, char *, size_t), char *why, size_t whylen)
{
    if (!*val) {
        free(*slot);
        *slot = NULL;
        return 0;
    }
    if (check(val, why, whylen) != 0)
        return -1;
    return replace_str(slot, val);
}

static int set_tls_cert(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_path_checked(&cfg->tls_cert, val, tls_check_cert_file, why, whylen);
}

static int set_tls_key(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_path_checked(&cfg->tls_key, val, tls_check_key_file, why, whylen);
}

static int tokens_text_ok(const char *val, char *why, size_t whylen)
{
    struct auth *a = NULL;
    int err = auth_load(val, NULL, &a, why, whylen);

    auth_free(a);
    return err == 0 ? 0 : -1;
}

static int tokens_file_ok(const char *val, char *why, size_t whylen)
{
    struct auth *a = NULL;
    int err = auth_load(NULL, val, &a, why, whylen);

    auth_free(a);
    return err == 0 ? 0 : -1;
}

static int set_api_tokens(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_path_checked(&cfg->api_tokens, val, tokens_text_ok, why, whylen);
}

static int set_api_tokens_file(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_path_checked(&cfg->api_tokens_file, val, tokens_file_ok, why, whylen);
}

static int set_metrics_auth(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_bool(&cfg->metrics_auth, val, why, whylen);
}

static int set_max_connections(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->max_connections, val, 1, 65536, why, whylen);
}

static int set_max_connections_per_ip(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->max_connections_per_ip, val, 0, 65536, why, whylen);
}

static int set_connection_timeout(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->connection_timeout_s, val, 1, 3600, why, whylen);
}

static int set_request_timeout(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->request_timeout_s, val, 1, 3600, why, whylen);
}

static int set_http_threads(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_int(&cfg->http_threads, val, 0, 256, why, whylen);
}

/* ---- objects and results ---- */

static int set_source(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (!*val || strcmp(val, "folder") == 0) {
        cfg->source_s3 = 0;
    } else if (strcmp(val, "s3") == 0) {
        cfg->source_s3 = 1;
    } else {
        snprintf(why, whylen, "expected folder or s3");
        return -1;
    }
    return 0;
}

/* An empty value means "not published". */
static int set_output_uri(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (!*val) {
        free(cfg->output_uri);
        cfg->output_uri = NULL;
        return 0;
    }
    if (!athena_sql_location_ok(val) || !strchr(val + 5, '/')) {
        snprintf(why, whylen,
                 "expected s3://bucket/prefix/ (a valid bucket; a prefix ending in / of A-Z a-z "
                 "0-9 ! - _ . * ( ) /)");
        return -1;
    }
    return replace_str(&cfg->output_uri, val);
}

int config_check_source(const char *src, const char **why)
{
    const char *bucket, *slash, *key, *seg;
    size_t blen;

    if (strncmp(src, "s3://", 5) != 0) {
        *why = "expected s3://bucket/key";
        return -1;
    }
    bucket = src + 5;
    slash = strchr(bucket, '/');
    if (!slash) {
        *why = "expected s3://bucket/key";
        return -1;
    }
    blen = (size_t)(slash - bucket);
    if (blen < 3 || blen > 63) {
        *why = "the bucket name must be 3..63 characters";
        return -1;
    }
    for (size_t i = 0; i < blen; i++) {
        char c = bucket[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-') {
            *why = "the bucket name may hold only a-z, 0-9, '.' and '-'";
            return -1;
        }
        if ((i == 0 || i == blen - 1) && !alnum) {
            *why = "the bucket name must start and end with a letter or digit";
            return -1;
        }
    }
    key = slash + 1;
    if (!*key || strlen(key) > 1024) {
        *why = "the key must be 1..1024 bytes";
        return -1;
    }
    for (seg = key; seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            *why = "the key may not hold '.' or '..' segments";
            return -1;
        }
        seg = end ? end + 1 : NULL;
    }
    return 0;
}

static int add_seed(struct config *cfg, const char *val, char *why, size_t whylen)
{
    const char *reason = NULL;
    char **grown;

    if (config_check_source(val, &reason) != 0) {
        snprintf(why, whylen, "%s", reason);
        return -1;
    }
    grown = realloc(cfg->seeds, (cfg->n_seeds + 1) * sizeof *grown);
    if (!grown)
        return -1;
    cfg->seeds = grown;
    cfg->seeds[cfg->n_seeds] = strdup(val);
    if (!cfg->seeds[cfg->n_seeds])
        return -1;
    cfg->n_seeds++;
    return 0;
}

static void clear_seeds(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_seeds; i++)
        free(cfg->seeds[i]);
    free(cfg->seeds);
    cfg->seeds = NULL;
    cfg->n_seeds = 0;
}

/* HCPIPE_SEED holds one or more sources separated by commas or spaces. */
static int set_seeds_env(struct config *cfg, const char *val, char *why, size_t whylen)
{
    char *copy = strdup(val), *p, *save = NULL;
    int rc = 0;

    if (!copy)
        return -1;
    for (p = strtok_r(copy, ", ", &save); p && rc == 0; p = strtok_r(NULL, ", ", &save))
        rc = add_seed(cfg, p, why, whylen);
    free(copy);
    return rc;
}

/* ---- POST /events settings ---- */

/* 1..512 characters without control characters (what EventBridge allows for an API key name or
 * value, minus the ':' check that only the name needs). */
static int token_ok(const char *val, int colon_ok)
{
    size_t n = strlen(val);

    if (n < 1 || n > 512)
        return 0;
    for (const unsigned char *p = (const unsigned char *)val; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (!colon_ok && *p == ':'))
            return 0;
    return 1;
}

static int set_webhook_key(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (!*val) { /* empty: no API key */
        free(cfg->webhook_api_key);
        cfg->webhook_api_key = NULL;
        return 0;
    }
    if (!token_ok(val, 1)) {
        snprintf(why, whylen, "expected 1..512 characters without control characters");
        return -1;
    }
    return replace_str(&cfg->webhook_api_key, val);
}

static int set_webhook_header(struct config *cfg, const char *val, char *why, size_t whylen)
{
    for (const char *p = val; *p; p++) {
        if (!strchr("!#$%&'*+-.^_`|~", *p) && !(*p >= '0' && *p <= '9') &&
            !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z')) {
            snprintf(why, whylen, "expected an HTTP header name such as x-api-key");
            return -1;
        }
    }
    if (!token_ok(val, 0) || strcasecmp(val, "authorization") == 0) {
        snprintf(why, whylen,
                 "expected an HTTP header name such as x-api-key (not Authorization, which Basic "
                 "uses)");
        return -1;
    }
    return replace_str(&cfg->webhook_header, val);
}

static int set_webhook_basic(struct config *cfg, const char *val, char *why, size_t whylen)
{
    const char *colon = strchr(val, ':');

    if (!*val) {
        free(cfg->webhook_basic);
        cfg->webhook_basic = NULL;
        return 0;
    }
    if (!colon || colon == val || !token_ok(val, 1)) {
        snprintf(why, whylen, "expected user:password (a non-empty user, no control characters)");
        return -1;
    }
    return replace_str(&cfg->webhook_basic, val);
}

static void list_free(char ***list, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

/* Splits a comma list (items trimmed of spaces, empty items dropped) and checks each item with
 * `ok` (NULL: any). Replaces *list on success. */
static int set_list(char ***list, size_t *n, const char *val, int (*ok)(const char *),
                    const char *expected, char *why, size_t whylen)
{
    char **items = NULL;
    size_t count = 0;
    const char *p = val;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *b = p, *e = p + len;
        char **grown;

        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (e > b) {
            grown = realloc(items, (count + 1) * sizeof *grown);
            if (!grown)
                goto oom;
            items = grown;
            items[count] = strndup(b, (size_t)(e - b));
            if (!items[count])
                goto oom;
            count++;
            if (ok && !ok(items[count - 1])) {
                snprintf(why, whylen, "%s (\"%s\" is not)", expected, items[count - 1]);
                list_free(&items, &count);
                return -1;
            }
        }
        p = end ? end + 1 : p + len;
    }
    list_free(list, n);
    *list = items;
    *n = count;
    return 0;
oom:
    list_free(&items, &count);
    snprintf(why, whylen, "out of memory");
    return -1;
}

static int bucket_ok(const char *b)
{
    return objstore_bucket_valid(b);
}

static int suffix_ok(const char *s)
{
    return strlen(s) <= 64 && !strchr(s, '/');
}

static int query_ok(const char *q)
{
    return engine_query_known(q) != 0;
}

static int set_event_buckets(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_list(&cfg->event_buckets, &cfg->n_event_buckets, val, bucket_ok,
                    "expected a comma list of S3 bucket names", why, whylen);
}

static int set_event_prefix(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (strlen(val) > 1024) {
        snprintf(why, whylen, "expected a key prefix of at most 1024 bytes");
        return -1;
    }
    return replace_str(&cfg->event_prefix, val);
}

static int set_event_suffixes(struct config *cfg, const char *val, char *why, size_t whylen)
{
    return set_list(&cfg->event_suffixes, &cfg->n_event_suffixes, val, suffix_ok,
                    "expected a comma list of key suffixes such as .json,.jsonl", why, whylen);
}

static int set_event_queries(struct config *cfg, const char *val, char *why, size_t whylen)
{
    char **list = NULL;
    size_t n = 0;

    if (set_list(&list, &n, val, query_ok,
                 "expected a comma list of catalog queries (facility_metrics, "
                 "accredited_by_state, expiring_accreditations)",
                 why, whylen) != 0)
        return -1;
    if (n == 0) {
        snprintf(why, whylen, "expected at least one catalog query");
        return -1;
    }
    list_free(&cfg->event_queries, &cfg->n_event_queries);
    cfg->event_queries = list;
    cfg->n_event_queries = n;
    return 0;
}

static int set_event_scope(struct config *cfg, const char *val, char *why, size_t whylen)
{
    if (strcmp(val, "dataset") == 0) {
        cfg->event_scope = SCOPE_DATASET;
    } else if (strcmp(val, "object") == 0) {
        cfg->event_scope = SCOPE_OBJECT;
    } else {
        snprintf(why, whylen, "expected dataset or object");
        return -1;
    }
    return 0;
}

static const struct setting settings[] = {
    {.flag = "--listen", .env = "HCPIPE_LISTEN", .has_value = 1, .set = set_listen},
    {.flag = "--data-dir", .env = "HCPIPE_DATA_DIR", .has_value = 1, .set = set_data_dir},
    {.flag = "--engine", .env = "HCPIPE_ENGINE", .has_value = 1, .set = set_engine},
    {.flag = "--workers", .env = "HCPIPE_WORKERS", .has_value = 1, .set = set_workers},
    {.flag = "--job-timeout", .env = "HCPIPE_JOB_TIMEOUT", .has_value = 1, .set = set_job_timeout},
    {.flag = "--max-attempts",
     .env = "HCPIPE_MAX_ATTEMPTS",
     .has_value = 1,
     .set = set_max_attempts},
    {.flag = "--log-level", .env = "HCPIPE_LOG_LEVEL", .has_value = 1, .set = set_log_level},
    {.flag = "--max-body", .env = "HCPIPE_MAX_BODY", .has_value = 1, .set = set_max_body},
    {.flag = "--seed",
     .env = "HCPIPE_SEED",
     .has_value = 1,
     .set = add_seed,
     .set_env = set_seeds_env},
    {.flag = "--insecure-dev-events",
     .env = "HCPIPE_INSECURE_DEV_EVENTS",
     .has_value = 0,
     .set = set_insecure},
    {.flag = "--webhook-api-key",
     .env = "HCPIPE_WEBHOOK_API_KEY",
     .has_value = 1,
     .set = set_webhook_key,
     .secret = 1},
    {.flag = "--webhook-header",
     .env = "HCPIPE_WEBHOOK_HEADER",
     .has_value = 1,
     .set = set_webhook_header},
    {.flag = "--webhook-basic",
     .env = "HCPIPE_WEBHOOK_BASIC",
     .has_value = 1,
     .set = set_webhook_basic,
     .secret = 1},
    {.flag = "--event-buckets",
     .env = "HCPIPE_EVENT_BUCKETS",
     .has_value = 1,
     .set = set_event_buckets},
    {.flag = "--event-prefix",
     .env = "HCPIPE_EVENT_PREFIX",
     .has_value = 1,
     .set = set_event_prefix},
    {.flag = "--event-suffixes",
     .env = "HCPIPE_EVENT_SUFFIXES",
     .has_value = 1,
     .set = set_event_suffixes},
    {.flag = "--event-queries",
     .env = "HCPIPE_EVENT_QUERIES",
     .has_value = 1,
     .set = set_event_queries},
    {.flag = "--event-scope", .env = "HCPIPE_EVENT_SCOPE", .has_value = 1, .set = set_event_scope},
    {.flag = "--tls-cert", .env = "HCPIPE_TLS_CERT", .has_value = 1, .set = set_tls_cert},
    {.flag = "--tls-key", .env = "HCPIPE_TLS_KEY", .has_value = 1, .set = set_tls_key},
    {.flag = "--api-tokens",
     .env = "HCPIPE_API_TOKENS",
     .has_value = 1,
     .set = set_api_tokens,
     .secret = 1},
    {.flag = "--api-tokens-file",
     .env = "HCPIPE_API_TOKENS_FILE",
     .has_value = 1,
     .set = set_api_tokens_file},
    {.flag = "--metrics-auth",
     .env = "HCPIPE_METRICS_AUTH",
     .has_value = 0,
     .set = set_metrics_auth},
    {.flag = "--max-connections",
     .env = "HCPIPE_MAX_CONNECTIONS",
     .has_value = 1,
     .set = set_max_connections},
    {.flag = "--max-connections-per-ip",
     .env = "HCPIPE_MAX_CONNECTIONS_PER_IP",
     .has_value = 1,
     .set = set_max_connections_per_ip},
    {.flag = "--connection-timeout",
     .env = "HCPIPE_CONNECTION_TIMEOUT",
     .has_value = 1,
     .set = set_connection_timeout},
    {.flag = "--request-timeout",
     .env = "HCPIPE_REQUEST_TIMEOUT",
     .has_value = 1,
     .set = set_request_timeout},
    {.flag = "--http-threads",
     .env = "HCPIPE_HTTP_THREADS",
     .has_value = 1,
     .set = set_http_threads},
    {.flag = "--source", .env = "HCPIPE_SOURCE", .has_value = 1, .set = set_source},
    {.flag = "--output-uri", .env = "HCPIPE_OUTPUT_URI", .has_value = 1, .set = set_output_uri},
};

static const char usage[] =
    "Usage: hcpipe serve [options]\n"
    "\n"
    "Runs the HTTP service: the jobs API, the worker pool and the engine. Every option has an\n"
    "environment variable; a flag beats the variable. Stop with SIGTERM or SIGINT.\n"
    "\n"
    "Options (environment variable, default):\n"
    "  --listen HOST:PORT      address to listen on; IPv4, localhost or [IPv6]; port 0 picks\n"
    "                          a free port (HCPIPE_LISTEN, 127.0.0.1:8080)\n"
    "  --data-dir DIR          job store, warehouse, results and buckets/<bucket>/<key>\n"
    "                          (HCPIPE_DATA_DIR, ./var)\n"
    "  --engine NAME           query engine: local | athena (HCPIPE_ENGINE, local)\n"
    "  --workers N             worker threads, 1..64 (HCPIPE_WORKERS, 2)\n"
    "  --job-timeout SECONDS   longest a job may run, 1..86400; a job may ask for less with\n"
    "                          timeout_s (HCPIPE_JOB_TIMEOUT, 900)\n"
    "  --max-attempts N        attempts before a job is dead, 1..100 (HCPIPE_MAX_ATTEMPTS, 5)\n"
    "  --log-level LEVEL       debug | info | warn | error (HCPIPE_LOG_LEVEL, info)\n"
    "  --max-body BYTES        largest request body, 1024..67108864 (HCPIPE_MAX_BODY, 1048576)\n"
    "  --seed s3://BUCKET/KEY  at start, queue a facility_metrics job that loads this object\n"
    "                          into the warehouse; repeatable (HCPIPE_SEED, comma-separated;\n"
    "                          none)\n"
    "  --insecure-dev-events   accept POST /events without a credential; development only\n"
    "                          (HCPIPE_INSECURE_DEV_EVENTS=1, off)\n"
    "\n"
    "POST /events (S3 events from EventBridge API destinations or S3 notifications). The\n"
    "service refuses to start without an API key or Basic credential unless\n"
    "--insecure-dev-events is given; secrets are never logged:\n"
    "  --webhook-api-key KEY   API key expected in the header below (HCPIPE_WEBHOOK_API_KEY,\n"
    "                          none)\n"
    "  --webhook-header NAME   header carrying the API key (HCPIPE_WEBHOOK_HEADER, x-api-key)\n"
    "  --webhook-basic U:P     accept Authorization: Basic for user U, password P\n"
    "                          (HCPIPE_WEBHOOK_BASIC, none)\n"
    "  --event-buckets LIST    comma list of buckets whose events start work; other buckets\n"
    "                          are answered 200 ignored (HCPIPE_EVENT_BUCKETS, any)\n"
    "  --event-prefix PREFIX   key prefix an event's object must have (HCPIPE_EVENT_PREFIX,\n"
    "                          none)\n"
    "  --event-suffixes LIST   comma list; the key must end with one (HCPIPE_EVENT_SUFFIXES,\n"
    "                          .json,.jsonl,.ndjson; empty = any)\n"
    "  --event-queries LIST    catalog queries an Object Created event queues\n"
    "                          (HCPIPE_EVENT_QUERIES, accredited_by_state)\n"
    "  --event-scope SCOPE     dataset | object: scope of those jobs (HCPIPE_EVENT_SCOPE,\n"
    "                          dataset)\n"
    "\n"
    "HTTPS, API tokens and limits (the edge):\n"
    "  --tls-cert FILE         PEM certificate (chain) to serve HTTPS; needs --tls-key. SIGHUP\n"
    "                          re-reads both files without closing the listener; a bad pair\n"
    "                          is logged and the old one kept (HCPIPE_TLS_CERT, plain HTTP)\n"
    "  --tls-key FILE          its unencrypted PEM private key (HCPIPE_TLS_KEY, none)\n"
    "  --api-tokens LIST       bearer tokens, name:scope:token[,...]; scope read (GET/HEAD)\n"
    "                          or write (everything); tokens 16..512 printable characters\n"
    "                          without spaces or commas. Unset with no file: the API is open\n"
    "                          (a warning is logged). /healthz and /readyz are always open\n"
    "                          (HCPIPE_API_TOKENS, none)\n"
    "  --api-tokens-file FILE  more tokens, one name:scope:token a line, '#' comments;\n"
    "                          re-read on SIGHUP (HCPIPE_API_TOKENS_FILE, none)\n"
    "  --metrics-auth          GET /metrics needs a read token too\n"
    "                          (HCPIPE_METRICS_AUTH=1, off)\n"
    "  --max-connections N     concurrent connections, 1..65536; more wait in the listen\n"
    "                          queue (pool; each pool thread takes an equal share) or are\n"
    "                          closed at once (thread per connection)\n"
    "                          (HCPIPE_MAX_CONNECTIONS, 256)\n"
    "  --max-connections-per-ip N  concurrent connections from one address; more are closed\n"
    "                          at once, 0 = no cap (HCPIPE_MAX_CONNECTIONS_PER_IP, 32)\n"
    "  --connection-timeout S  close a connection idle this long, 1..3600\n"
    "                          (HCPIPE_CONNECTION_TIMEOUT, 30)\n"
    "  --request-timeout S     a request's headers and body must arrive within S seconds of\n"
    "                          the connection opening or the previous answer, however slowly\n"
    "                          they trickle in, 1..3600 (HCPIPE_REQUEST_TIMEOUT, 30)\n"
    "  --http-threads N        threads serving connections from a poll loop; an idle or slow\n"
    "                          connection costs no thread. 0 = one thread per connection,\n"
    "                          0..256 (HCPIPE_HTTP_THREADS, 16)\n"
    "\n"
    "Objects and results:\n"
    "  --source KIND           folder | s3: where the local engine reads objects (folder:\n"
    "                          <data-dir>/buckets/<bucket>/<key>; s3: S3 or\n"
    "                          AWS_ENDPOINT_URL_S3, streamed into the parser)\n"
    "                          (HCPIPE_SOURCE, folder)\n"
    "  --source-uri s3://B/P/  with --source s3, dataset-scope jobs first load every object\n"
    "                          under it whose ETag changed (and forget objects deleted from\n"
    "                          it); also the Athena table's location, see below\n"
    "                          (HCPIPE_SOURCE_URI, none)\n"
    "  --output-uri s3://B/P/  each result is also published as <prefix><query>/<job_id>.json\n"
    "                          and .csv (HCPIPE_OUTPUT_URI, not published)\n"
    "  -h, --help              show this help and exit\n";

const char *config_usage(void)
{
    return usage;
}

static size_t count_athena_options(void)
{
    const char *flag, *env;
    size_t n = 0;

    while (engine_athena_option(n, &flag, &env) == 0)
        n++;
    return n;
}

/* The index of the Athena setting whose flag is the first flen bytes of arg, or -1. */
static long find_athena_option(const char *arg, size_t flen)
{
    const char *flag, *env;

    for (size_t i = 0; engine_athena_option(i, &flag, &env) == 0; i++)
        if (strlen(flag) == flen && strncmp(flag, arg, flen) == 0)
            return (long)i;
    return -1;
}

const char *config_athena_text(const struct config *cfg, const char *flag)
{
    long i = find_athena_option(flag, strlen(flag));

    return i >= 0 && (size_t)i < cfg->n_athena_texts ? cfg->athena_texts[i] : NULL;
}

static int set_defaults(struct config *cfg)
{
    char why[8];

    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 2;
    cfg->job_timeout_s = 900;
    cfg->max_attempts = 5;
    cfg->max_body = 1 << 20;
    cfg->max_connections = 256;
    cfg->max_connections_per_ip = 32;
    cfg->connection_timeout_s = 30;
    cfg->request_timeout_s = 30;
    cfg->http_threads = 16; /* a handler waits out its group commit: more threads, bigger batches */
    cfg->event_scope = SCOPE_DATASET;
    cfg->n_athena_texts = count_athena_options();
    cfg->athena_texts = calloc(cfg->n_athena_texts + 1, sizeof *cfg->athena_texts);
    if (!cfg->athena_texts)
        return -1;
    if (set_listen(cfg, "127.0.0.1:8080", why, sizeof why) ||
        replace_str(&cfg->data_dir, "./var") || replace_str(&cfg->engine, "local") ||
        replace_str(&cfg->log_level, "info") || replace_str(&cfg->webhook_header, "x-api-key") ||
        replace_str(&cfg->event_prefix, "") ||
        set_event_suffixes(cfg, ".json,.jsonl,.ndjson", why, sizeof why) ||
        set_event_queries(cfg, "accredited_by_state", why, sizeof why))
        return -1;
    return 0;
}

/* Applies one value; on failure writes the full message naming `name`. */
static int apply(struct config *cfg, setter set, const char *name, const char *val, int secret,
                 char *err, size_t errlen)
{
    char why[200] = "out of memory";

    if (set(cfg, val, why, sizeof why) == 0)
        return 0;
    if (secret) /* never echo a secret */
        snprintf(err, errlen, "invalid %s: %s", name, why);
    else
        snprintf(err, errlen, "invalid %s \"%s\": %s", name, val, why);
    return -1;
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    enum { MAX_FLAGS = 256 };
    const size_t n = sizeof settings / sizeof settings[0];
    const struct setting *flag_set[MAX_FLAGS];
    const char *flag_val[MAX_FLAGS];
    int given[sizeof settings / sizeof settings[0]] = {0};
    size_t nflags = 0;

    if (set_defaults(cfg) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Pass 1: read the flags, so a variable whose flag is given is never looked at. An Athena
     * setting's flag is stored as text at once (the last one wins); the engine checks it. */
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a], *eq, *val;
        const struct setting *s = NULL;
        long athena = -1;
        size_t flen;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return 1;
        eq = strchr(arg, '=');
        flen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (size_t i = 0; i < n && !s; i++) {
            if (strlen(settings[i].flag) == flen && strncmp(settings[i].flag, arg, flen) == 0) {
                s = &settings[i];
                given[i] = 1;
            }
        }
        if (!s)
            athena = find_athena_option(arg, flen);
        if (!s && athena < 0) {
            snprintf(err, errlen, "unknown option \"%s\" (see hcpipe serve --help)", arg);
            return -1;
        }
        if (s && !s->has_value) {
            val = eq ? eq + 1 : "1";
        } else if (eq) {
            val = eq + 1;
        } else if (a + 1 < argc) {
            val = argv[++a];
        } else {
            snprintf(err, errlen, "option %.*s needs a value", (int)flen, arg);
            return -1;
        }
        if (athena >= 0) {
            if (replace_str(&cfg->athena_texts[athena], val) != 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            continue;
        }
        if (nflags == MAX_FLAGS) {
            snprintf(err, errlen, "too many options");
            return -1;
        }
        flag_set[nflags] = s;
        flag_val[nflags] = val;
        nflags++;
    }
    /* Pass 2: the environment, for the settings no flag gave. */
    for (size_t i = 0; i < n; i++) {
        const struct setting *s = &settings[i];
        const char *val = given[i] ? NULL : getenv(s->env);

        if (val &&
            apply(cfg, s->set_env ? s->set_env : s->set, s->env, val, s->secret, err, errlen) != 0)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_athena_texts; i++) {
        const char *flag, *env, *val;

        if (cfg->athena_texts[i] || engine_athena_option(i, &flag, &env) != 0)
            continue;
        val = getenv(env);
        if (val && replace_str(&cfg->athena_texts[i], val) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    /* Pass 3: the flags, in order (--seed accumulates). */
    for (size_t f = 0; f < nflags; f++)
        if (apply(cfg, flag_set[f]->set, flag_set[f]->flag, flag_val[f], flag_set[f]->secret, err,
                  errlen) != 0)
            return -1;
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen,
                 "--tls-cert (HCPIPE_TLS_CERT) and --tls-key (HCPIPE_TLS_KEY) go together: %s is "
                 "missing",
                 cfg->tls_cert ? "--tls-key" : "--tls-cert");
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    free(cfg->listen);
    free(cfg->listen_host);
    free(cfg->data_dir);
    free(cfg->engine);
    free(cfg->log_level);
    clear_seeds(cfg);
    free(cfg->webhook_api_key);
    free(cfg->webhook_header);
    free(cfg->webhook_basic);
    free(cfg->event_prefix);
    list_free(&cfg->event_buckets, &cfg->n_event_buckets);
    list_free(&cfg->event_suffixes, &cfg->n_event_suffixes);
    list_free(&cfg->event_queries, &cfg->n_event_queries);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    if (cfg->api_tokens)
        memset(cfg->api_tokens, 0, strlen(cfg->api_tokens));
    free(cfg->api_tokens);
    free(cfg->api_tokens_file);
    free(cfg->output_uri);
    for (size_t i = 0; cfg->athena_texts && i < cfg->n_athena_texts; i++)
        free(cfg->athena_texts[i]);
    free(cfg->athena_texts);
    memset(cfg, 0, sizeof *cfg);
}
