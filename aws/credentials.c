/*
 * credentials.c: the default AWS credentials chain (see credentials.h).
 *
 * Organisation, top to bottom:
 *   - helpers: secret-wiping string handling, ISO 8601 expiry parsing, a tiny curl GET/PUT
 *     (plain easy handle, no proxy, short timeouts) used by the container and IMDS sources;
 *   - the sources, each filling a struct aws_credentials or an error: environment, shared
 *     files (credentials file `[p]`, then config file `[profile p]` / `[default]`), container
 *     (ECS/EKS: RELATIVE_URI against 169.254.170.2, FULL_URI restricted to https or allowed
 *     hosts, authorization token from a file or the environment), EC2 IMDSv2 (token PUT, role
 *     name, role credentials; IMDSv1 when the PUT answers 403/404/405);
 *   - the provider: a mutex-guarded cache, refreshed when the credentials expire within 5 min.
 *
 * Nothing here logs. Every buffer that held a secret is wiped with OPENSSL_cleanse before it is
 * freed. (jansson's own copies of the strings while parsing a response are freed by jansson.)
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "aws/buf.h"
#include "aws/credentials.h"

#define CRED_REFRESH_AHEAD 300 /* seconds before expiry that trigger a refresh */
#define CRED_BODY_MAX      ((size_t)64 << 10)
#define CRED_LINE_MAX      16384

/* ---- helpers ---- */

static void cred_free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void aws_credentials_clear(struct aws_credentials *c)
{
    if (!c)
        return;
    cred_free_secret(c->access_key_id);
    cred_free_secret(c->secret_access_key);
    cred_free_secret(c->session_token);
    c->access_key_id = c->secret_access_key = c->session_token = NULL;
    c->expiration = 0;
    c->source = NULL;
}

static void cred_buf_wipe(struct buf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    buf_free(b);
}

/* Wipes the headers (they may hold a token) and frees the list. */
static void cred_slist_wipe(struct curl_slist *hl)
{
    for (struct curl_slist *s = hl; s; s = s->next)
        OPENSSL_cleanse(s->data, strlen(s->data));
    curl_slist_free_all(hl);
}

/* Copies src into dst (all strings duplicated). Returns 0 or -1 on ENOMEM (dst cleared). */
static int cred_copy(struct aws_credentials *dst, const struct aws_credentials *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->access_key_id = strdup(src->access_key_id);
    dst->secret_access_key = strdup(src->secret_access_key);
    if (src->session_token)
        dst->session_token = strdup(src->session_token);
    dst->expiration = src->expiration;
    dst->source = src->source;
    if (!dst->access_key_id || !dst->secret_access_key ||
        (src->session_token && !dst->session_token)) {
        aws_credentials_clear(dst);
        return -1;
    }
    return 0;
}

static void cred_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cred_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Parses "2026-11-27T23:00:00Z" (fraction and a +hh:mm offset allowed). -1 when malformed. */
static time_t cred_parse_time(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, consumed = 0;
    const char *p;
    long off = 0;
    time_t t;

    memset(&tm, 0, sizeof(tm));
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6)
        return -1;
    p = s + consumed;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;

        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
            return -1;
        off = (oh * 3600L + om * 60L) * (*p == '+' ? 1 : -1);
    } else if (*p != 'Z' && *p != 'z' && *p != '\0') {
        return -1;
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return t - off;
}

static pthread_once_t cred_once = PTHREAD_ONCE_INIT;

static void cred_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t cred_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;

    return buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* One HTTP exchange. Returns 0 when a response arrived (status in *status_out, body in `body`),
 * or -1 with a message in err (network error or timeout: *timed_out_out set for a timeout). */
static int cred_http(const char *method, const char *url, struct curl_slist *headers,
                     long timeout_ms, struct buf *body, long *status_out, int *timed_out_out,
                     char *err, size_t errlen)
{
    CURL *h;
    CURLcode cc;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = -1;

    *status_out = 0;
    if (timed_out_out)
        *timed_out_out = 0;
    pthread_once(&cred_once, cred_global_init);
    h = curl_easy_init();
    if (!h) {
        cred_err(err, errlen, "curl_easy_init failed");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cred_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hcpipe-aws/1");
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        if (timed_out_out)
            *timed_out_out = cc == CURLE_OPERATION_TIMEDOUT;
        cred_err(err, errlen, "%s %s: %s", method, url,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status_out);
    rc = 0;
out:
    curl_easy_cleanup(h);
    return rc;
}

/* Fills *out from the JSON of a container or IMDS response. */
static int cred_from_json(const struct buf *body, const char *source, struct aws_credentials *out,
                          char *err, size_t errlen)
{
    json_t *root = NULL;
    const char *akid, *secret, *token, *exp, *code;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (body->data)
        root = json_loadb(body->data, body->len, 0, NULL);
    if (!json_is_object(root)) {
        cred_err(err, errlen, "%s: the credentials response is not a JSON object", source);
        goto out;
    }
    code = json_string_value(json_object_get(root, "Code"));
    if (code && strcmp(code, "Success") != 0) {
        cred_err(err, errlen, "%s: credentials response Code is %.64s", source, code);
        goto out;
    }
    akid = json_string_value(json_object_get(root, "AccessKeyId"));
    secret = json_string_value(json_object_get(root, "SecretAccessKey"));
    token = json_string_value(json_object_get(root, "Token"));
    exp = json_string_value(json_object_get(root, "Expiration"));
    if (!akid || !*akid || !secret || !*secret) {
        cred_err(err, errlen, "%s: AccessKeyId or SecretAccessKey missing in the response", source);
        goto out;
    }
    if (exp) {
        out->expiration = cred_parse_time(exp);
        if (out->expiration == (time_t)-1) {
            cred_err(err, errlen, "%s: unparsable Expiration", source);
            out->expiration = 0;
            goto out;
        }
    }
    out->access_key_id = strdup(akid);
    out->secret_access_key = strdup(secret);
    out->session_token = token && *token ? strdup(token) : NULL;
    out->source = source;
    if (!out->access_key_id || !out->secret_access_key ||
        (token && *token && !out->session_token)) {
        cred_err(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        aws_credentials_clear(out);
    json_decref(root);
    return rc;
}

/* ---- source: environment ---- */

/* 1 = found, 0 = not configured, -1 = error. */
static int cred_env(struct aws_credentials *out, char *err, size_t errlen)
{
    const char *akid = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    const char *exp = getenv("AWS_CREDENTIAL_EXPIRATION");
    struct aws_credentials c = {0};

    if ((!akid || !*akid) && (!secret || !*secret))
        return 0;
    if (!akid || !*akid || !secret || !*secret) {
        cred_err(err, errlen, "env: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set");
        return -1;
    }
    if (!token || !*token)
        token = getenv("AWS_SECURITY_TOKEN");
    c.access_key_id = (char *)(uintptr_t)akid;
    c.secret_access_key = (char *)(uintptr_t)secret;
    c.session_token = token && *token ? (char *)(uintptr_t)token : NULL;
    c.source = "env";
    if (exp && *exp) {
        c.expiration = cred_parse_time(exp);
        if (c.expiration == (time_t)-1) {
            cred_err(err, errlen, "env: unparsable AWS_CREDENTIAL_EXPIRATION");
            return -1;
        }
    }
    if (cred_copy(out, &c) != 0) {
        cred_err(err, errlen, "out of memory");
        return -1;
    }
    return 1;
}

/* ---- source: shared files ---- */

struct ini_found {
    char *akid, *secret, *token;
    char *region; /* config file only */
};

static void ini_found_clear(struct ini_found *f)
{
    cred_free_secret(f->akid);
    cred_free_secret(f->secret);
    cred_free_secret(f->token);
    free(f->region);
    memset(f, 0, sizeof(*f));
}

static char *cred_trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    *e = '\0';
    return s;
}

/* Does section header text `sec` (inside the brackets, trimmed) name `profile`? In the config
 * file a profile is `[profile name]`, and the default one may also be `[default]`. */
static int ini_section_matches(const char *sec, const char *profile, int config_file)
{
    if (!config_file)
        return strcmp(sec, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(sec, "default") == 0)
        return 1;
    if (strncmp(sec, "profile", 7) != 0 || !isspace((unsigned char)sec[7]))
        return 0;
    sec += 7;
    while (isspace((unsigned char)*sec))
        sec++;
    return strcmp(sec, profile) == 0;
}

/* Reads the keys of `profile` from an INI file. Returns 1 when the section exists, 0 when the
 * file or the section does not, -1 on ENOMEM. */
static int ini_read(const char *path, const char *profile, int config_file, struct ini_found *f)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    int in = 0, found = 0, rc = 0;

    if (!fp)
        return 0;
    line = malloc(CRED_LINE_MAX);
    if (!line) {
        fclose(fp);
        return -1;
    }
    while (fgets(line, CRED_LINE_MAX, fp)) {
        char *s = cred_trim(line), *eq, *key, *val, **slot = NULL;

        if (*s == '\0' || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strrchr(s, ']');

            if (!end)
                continue;
            *end = '\0';
            in = ini_section_matches(cred_trim(s + 1), profile, config_file);
            found |= in;
            continue;
        }
        if (!in)
            continue;
        eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        key = cred_trim(s);
        val = cred_trim(eq + 1);
        if (strcasecmp(key, "aws_access_key_id") == 0)
            slot = &f->akid;
        else if (strcasecmp(key, "aws_secret_access_key") == 0)
            slot = &f->secret;
        else if (strcasecmp(key, "aws_session_token") == 0 ||
                 (strcasecmp(key, "aws_security_token") == 0 && !f->token))
            slot = &f->token;
        else if (config_file && strcasecmp(key, "region") == 0)
            slot = &f->region;
        if (slot && *val) {
            cred_free_secret(*slot);
            *slot = strdup(val);
            if (!*slot) {
                rc = -1;
                break;
            }
        }
    }
    OPENSSL_cleanse(line, CRED_LINE_MAX);
    free(line);
    fclose(fp);
    return rc < 0 ? -1 : found;
}

/* "$HOME/.aws/<name>" or the variable's value, into out. */
static int cred_file_path(const char *var, const char *name, char *out, size_t outlen)
{
    const char *v = getenv(var), *home;

    if (v && *v)
        return snprintf(out, outlen, "%s", v) < (int)outlen ? 0 : -1;
    home = getenv("HOME");
    if (!home || !*home)
        return -1;
    return snprintf(out, outlen, "%s/.aws/%s", home, name) < (int)outlen ? 0 : -1;
}

static const char *cred_profile(void)
{
    const char *profile = getenv("AWS_PROFILE");

    if (!profile || !*profile)
        profile = getenv("AWS_DEFAULT_PROFILE");
    if (!profile || !*profile)
        profile = "default";
    return profile;
}

int aws_profile_region(char *out, size_t outlen)
{
    char path[4096];
    struct ini_found f = {0};
    int rc = -1;

    if (outlen > 0)
        out[0] = '\0';
    if (cred_file_path("AWS_CONFIG_FILE", "config", path, sizeof(path)) != 0)
        return -1;
    if (ini_read(path, cred_profile(), 1, &f) > 0 && f.region &&
        snprintf(out, outlen, "%s", f.region) < (int)outlen)
        rc = 0;
    else if (outlen > 0)
        out[0] = '\0';
    ini_found_clear(&f);
    return rc;
}

static int cred_shared(struct aws_credentials *out, char *err, size_t errlen)
{
    const char *profile = cred_profile();
    char path[4096];
    struct ini_found f = {0};
    int rc = 0;

    for (int config = 0; config <= 1 && rc == 0; config++) {
        if (cred_file_path(config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE",
                           config ? "config" : "credentials", path, sizeof(path)) != 0)
            continue;
        if (ini_read(path, profile, config, &f) < 0) {
            cred_err(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        if (f.akid && f.secret) {
            struct aws_credentials c = {
                .access_key_id = f.akid,
                .secret_access_key = f.secret,
                .session_token = f.token,
                .source = "shared-file",
            };

            if (cred_copy(out, &c) != 0) {
                cred_err(err, errlen, "out of memory");
                rc = -1;
            } else {
                rc = 1;
            }
        } else if (f.akid || f.secret) {
            cred_err(err, errlen,
                     "shared file %s: profile %s has only one of "
                     "aws_access_key_id / aws_secret_access_key",
                     path, profile);
            rc = -1;
        }
        ini_found_clear(&f);
    }
    ini_found_clear(&f);
    return rc;
}

/* ---- source: container (ECS / EKS Pod Identity) ---- */

/* May plain http go to this FULL_URI? Only loopback and the link-local container hosts. */
static int cred_container_host_allowed(const char *url)
{
    const char *h = url + strlen("http://"), *end;
    char host[64];
    struct in_addr a4;
    size_t n;

    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return 0;
        h++;
    } else {
        end = h + strcspn(h, ":/?#");
    }
    n = (size_t)(end - h);
    if (n == 0 || n >= sizeof(host))
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "169.254.170.2") == 0 ||
        strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "fd00:ec2::23") == 0 ||
        strcmp(host, "::1") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return 0;
}

/* The authorization token (new string, NULL when none), or -1 on error. */
static int cred_container_token(char **token_out, char *err, size_t errlen)
{
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *env = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *tok = NULL;

    *token_out = NULL;
    if (file && *file) {
        FILE *fp = fopen(file, "r");
        struct buf b;
        char chunk[1024];
        size_t n;

        if (!fp) {
            cred_err(err, errlen, "container: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
            return -1;
        }
        buf_init(&b, 16384);
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            buf_append(&b, chunk, n);
        OPENSSL_cleanse(chunk, sizeof(chunk));
        fclose(fp);
        while (b.len > 0 && isspace((unsigned char)b.data[b.len - 1]))
            b.data[--b.len] = '\0';
        if (b.failed) {
            cred_err(err, errlen, "container: the authorization token file is too large");
            return -1;
        }
        tok = b.data ? strdup(b.data) : NULL;
        cred_buf_wipe(&b);
    } else if (env && *env) {
        tok = strdup(env);
    } else {
        return 0;
    }
    if (!tok) {
        cred_err(err, errlen, "container: empty authorization token");
        return -1;
    }
    if (strpbrk(tok, "\r\n")) {
        cred_free_secret(tok);
        cred_err(err, errlen, "container: the authorization token contains CR or LF");
        return -1;
    }
    *token_out = tok;
    return 0;
}

static int cred_container(struct aws_credentials *out, char *err, size_t errlen)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[4096], *token = NULL;
    struct curl_slist *hl = NULL;
    struct buf body, authz;
    long status = 0;
    int rc = -1;

    buf_init(&body, CRED_BODY_MAX);
    buf_init(&authz, 32768);
    if (rel && *rel) {
        if (snprintf(url, sizeof(url), "http://169.254.170.2%s", rel) >= (int)sizeof(url)) {
            cred_err(err, errlen, "container: relative URI too long");
            goto out;
        }
    } else if (full && *full) {
        if (strncasecmp(full, "https://", 8) != 0 &&
            !(strncasecmp(full, "http://", 7) == 0 && cred_container_host_allowed(full))) {
            cred_err(err, errlen,
                     "container: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https or a loopback "
                     "/ container host");
            goto out;
        }
        if (snprintf(url, sizeof(url), "%s", full) >= (int)sizeof(url)) {
            cred_err(err, errlen, "container: full URI too long");
            goto out;
        }
    } else {
        rc = 0;
        goto out;
    }
    if (cred_container_token(&token, err, errlen) != 0)
        goto out;
    hl = curl_slist_append(hl, "Accept: application/json");
    if (token) {
        buf_printf(&authz, "Authorization: %s", token);
        if (authz.data && hl)
            hl = curl_slist_append(hl, authz.data);
    }
    if (!hl || authz.failed) {
        cred_err(err, errlen, "out of memory");
        goto out;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        cred_buf_wipe(&body);
        buf_init(&body, CRED_BODY_MAX);
        char nerr[384];

        if (cred_http("GET", url, hl, 2000, &body, &status, NULL, nerr, sizeof(nerr)) != 0) {
            cred_err(err, errlen, "container: %s", nerr);
            continue;
        }
        if (status == 200)
            break;
        cred_err(err, errlen, "container: the credentials endpoint answered HTTP %ld", status);
        if (status < 500)
            break;
    }
    if (status != 200)
        goto out;
    if (cred_from_json(&body, "container", out, err, errlen) != 0)
        goto out;
    rc = 1;
out:
    cred_slist_wipe(hl);
    cred_free_secret(token);
    cred_buf_wipe(&authz);
    cred_buf_wipe(&body);
    return rc;
}

/* ---- source: EC2 instance metadata (IMDSv2) ---- */

static int cred_env_true(const char *name)
{
    const char *v = getenv(name);

    return v && strcasecmp(v, "true") == 0;
}

static long cred_env_long(const char *name, long def, long lo, long hi)
{
    const char *v = getenv(name);
    char *end;
    long n;

    if (!v || !*v)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < lo || n > hi)
        return def;
    return n;
}

static int cred_imds(struct aws_credentials *out, char *err, size_t errlen)
{
    const char *base_env = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    long timeout_ms = cred_env_long("AWS_METADATA_SERVICE_TIMEOUT", 1, 1, 60) * 1000;
    char base[1024], url[2048], role[256], nerr[384];
    struct curl_slist *hl = NULL;
    struct buf body, tokhdr;
    long status = 0;
    int timed_out = 0, rc = -1;
    size_t n;

    buf_init(&body, CRED_BODY_MAX);
    buf_init(&tokhdr, 8192);
    if (cred_env_true("AWS_EC2_METADATA_DISABLED")) {
        cred_err(err, errlen, "imds: disabled by AWS_EC2_METADATA_DISABLED");
        rc = 0;
        goto out;
    }
    if (!base_env || !*base_env) {
        const char *mode = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");

        base_env = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                         : "http://169.254.169.254";
    }
    snprintf(base, sizeof(base), "%s", base_env);
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';

    /* 1. The session token. */
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    hl = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    if (!hl) {
        cred_err(err, errlen, "out of memory");
        goto out;
    }
    if (cred_http("PUT", url, hl, timeout_ms, &body, &status, &timed_out, err, errlen) != 0) {
        if (timed_out)
            cred_err(err, errlen,
                     "imds: no answer to the token request (PUT %s) within %ld ms; in a "
                     "container on EC2 the metadata hop limit may be 1 (it must be 2)",
                     url, timeout_ms);
        else
            cred_err(err, errlen, "imds: the token request failed (PUT %s)", url);
        goto out;
    }
    curl_slist_free_all(hl);
    hl = NULL;
    if (status == 200 && body.data && body.len > 0) {
        buf_printf(&tokhdr, "X-aws-ec2-metadata-token: %s", body.data);
        if (tokhdr.failed || strpbrk(body.data, "\r\n")) {
            cred_err(err, errlen, "imds: bad token");
            goto out;
        }
        hl = curl_slist_append(NULL, tokhdr.data);
        if (!hl) {
            cred_err(err, errlen, "out of memory");
            goto out;
        }
    } else if (status != 403 && status != 404 && status != 405) {
        cred_err(err, errlen, "imds: the token request answered HTTP %ld", status);
        goto out;
    } /* else IMDSv1: no token header. */

    /* 2. The role name. */
    cred_buf_wipe(&body);
    buf_init(&body, CRED_BODY_MAX);
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
    if (cred_http("GET", url, hl, timeout_ms, &body, &status, NULL, nerr, sizeof(nerr)) != 0) {
        cred_err(err, errlen, "imds: %s", nerr);
        goto out;
    }
    if (status != 200 || !body.data) {
        cred_err(err, errlen, "imds: no IAM role (GET %s answered HTTP %ld)", url, status);
        goto out;
    }
    n = strcspn(body.data, "\r\n");
    while (n > 0 && isspace((unsigned char)body.data[n - 1]))
        n--;
    if (n == 0 || n >= sizeof(role)) {
        cred_err(err, errlen, "imds: bad role name");
        goto out;
    }
    memcpy(role, body.data, n);
    role[n] = '\0';
    if (strpbrk(role, "/?#% ")) {
        cred_err(err, errlen, "imds: bad role name");
        goto out;
    }

    /* 3. The role's credentials. */
    cred_buf_wipe(&body);
    buf_init(&body, CRED_BODY_MAX);
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", base, role);
    if (cred_http("GET", url, hl, timeout_ms, &body, &status, NULL, nerr, sizeof(nerr)) != 0) {
        cred_err(err, errlen, "imds: %s", nerr);
        goto out;
    }
    if (status != 200) {
        cred_err(err, errlen, "imds: GET %s answered HTTP %ld", url, status);
        goto out;
    }
    if (cred_from_json(&body, "imds", out, err, errlen) != 0)
        goto out;
    rc = 1;
out:
    cred_slist_wipe(hl);
    cred_buf_wipe(&tokhdr);
    cred_buf_wipe(&body);
    return rc;
}

/* ---- the chain and the provider ---- */

static int cred_resolve(struct aws_credentials *out, char *err, size_t errlen)
{
    char imds_err[512] = "";
    int r;

    r = cred_env(out, err, errlen);
    if (r != 0)
        return r > 0 ? 0 : -1;
    r = cred_shared(out, err, errlen);
    if (r != 0)
        return r > 0 ? 0 : -1;
    r = cred_container(out, err, errlen);
    if (r != 0)
        return r > 0 ? 0 : -1;
    r = cred_imds(out, imds_err, sizeof(imds_err));
    if (r > 0)
        return 0;
    cred_err(err, errlen,
             "no AWS credentials found (environment, shared files, container not set; %s)",
             imds_err);
    return -1;
}

struct aws_credentials_provider {
    pthread_mutex_t mu;            /* guards cached and have */
    struct aws_credentials cached; /* the last credentials resolved */
    int have;                      /* cached is valid */
};

struct aws_credentials_provider *aws_credentials_provider_new(void)
{
    struct aws_credentials_provider *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void aws_credentials_provider_free(struct aws_credentials_provider *p)
{
    if (!p)
        return;
    aws_credentials_clear(&p->cached);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int aws_credentials_get(struct aws_credentials_provider *p, struct aws_credentials *out, char *err,
                        size_t errlen)
{
    struct aws_credentials fresh = {0};
    time_t now = time(NULL);
    int rc = -1;

    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&p->mu);
    if (p->have && (p->cached.expiration == 0 || p->cached.expiration - now > CRED_REFRESH_AHEAD))
        goto copy;
    if (cred_resolve(&fresh, err, errlen) != 0) {
        /* A failed refresh keeps serving credentials that have not expired yet. */
        if (p->have && p->cached.expiration > now + 60)
            goto copy;
        goto out;
    }
    aws_credentials_clear(&p->cached);
    p->cached = fresh;
    p->have = 1;
copy:
    if (cred_copy(out, &p->cached) != 0) {
        cred_err(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}
