/*
 * cli.c: `hcpipe aws ...`, the aws/ module's developer commands.
 *
 *   hcpipe aws sigv4-case --print creq|sts|sig|authz DIR
 *
 * signs one SigV4 case folder and prints what was computed, byte-exact and without a trailing
 * newline, so the output can be checked with cmp(1). Organisation: file reading, the raw HTTP
 * request parser (request line, headers with continuation lines, body), the case loader that
 * turns a folder into a struct sigv4_request (context.json, or inference from a captured
 * request), then the command dispatcher.
 */
#include "aws/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "aws/buf.h"

#define CASE_MAX_FILE (64u << 20)

/* The fixed inputs of both test folders (their READMEs state them). */
#define CASE_ACCESS_KEY "AKIDEXAMPLE"
#define CASE_SECRET_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CASE_REGION     "us-east-1"
#define CASE_TIME       "2015-08-30T12:36:00Z"

static const char usage_text[] =
    "usage: hcpipe aws <command> [options]\n"
    "\n"
    "commands:\n"
    "  sigv4-case --print creq|sts|sig|authz DIR\n"
    "      Sign one SigV4 case folder and print the canonical request, the string to sign,\n"
    "      the signature or the Authorization header value (no trailing newline).\n"
    "      DIR holds context.json + request.txt (aws-c-auth suite layout) or request.http\n"
    "      (an AWS CLI capture, CRLF line ends).\n";

/* ---- files -------------------------------------------------------------------------------- */

/* Reads a whole file into a NUL-terminated malloc'ed buffer; NULL when missing or too big. */
static char *read_whole(const char *dir, const char *name, size_t *len_out)
{
    char path[4096];
    FILE *f = NULL;
    struct buf b;
    char chunk[8192];
    size_t n;
    char *res = NULL;

    buf_init(&b, CASE_MAX_FILE);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        goto out;
    f = fopen(path, "rb");
    if (!f)
        goto out;
    for (;;) {
        n = fread(chunk, 1, sizeof(chunk), f);
        if (n == 0)
            break;
        if (buf_append(&b, chunk, n))
            goto out;
    }
    if (ferror(f) || buf_putc(&b, '\0'))
        goto out;
    res = buf_steal(&b, len_out);
    if (res)
        (*len_out)--;
out:
    if (f)
        fclose(f);
    buf_free(&b);
    return res;
}

/* ---- raw request parsing -------------------------------------------------------------- */

struct raw_header {
    char *name;  /* trimmed */
    char *value; /* trimmed; continuation lines joined with one space */
};

struct raw_request {
    char *method;
    char *path;  /* before '?' */
    char *query; /* after '?', or NULL */
    struct raw_header *headers;
    size_t n_headers;
    const char *body; /* points into the file text */
    size_t body_len;
};

static void raw_request_free(struct raw_request *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

static char *dup_trim(const char *s, size_t len)
{
    char *out;

    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    out = malloc(len + 1);
    if (out) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

/* Appends " " + continuation text to the last header's value. */
static int extend_value(struct raw_header *h, const char *s, size_t len)
{
    char *more = dup_trim(s, len);
    size_t old = strlen(h->value), add;
    char *v;

    if (!more)
        return -1;
    add = strlen(more);
    v = realloc(h->value, old + add + 2);
    if (!v) {
        free(more);
        return -1;
    }
    v[old] = ' ';
    memcpy(v + old + 1, more, add + 1);
    h->value = v;
    free(more);
    return 0;
}

/* Parses text[0..len): request line, headers (LF or CRLF), empty line, body. Returns 0 or -1. */
static int parse_request(const char *text, size_t len, struct raw_request *r)
{
    const char *p = text, *end = text + len;
    int line_no = 0;

    memset(r, 0, sizeof(*r));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        size_t n = (size_t)((nl ? nl : end) - p);

        if (n && p[n - 1] == '\r')
            n--;
        if (line_no++ == 0) {
            const char *sp1 = memchr(p, ' ', n), *sp2 = p + n;
            const char *target, *q;

            while (sp2 > p && sp2[-1] != ' ')
                sp2--;
            if (!sp1 || sp2 - 1 <= sp1)
                return -1;
            sp2--; /* the last space */
            r->method = dup_trim(p, (size_t)(sp1 - p));
            target = sp1 + 1;
            q = memchr(target, '?', (size_t)(sp2 - target));
            r->path = dup_trim(target, (size_t)((q ? q : sp2) - target));
            if (q)
                r->query = dup_trim(q + 1, (size_t)(sp2 - q - 1));
            if (!r->method || !r->path || (q && !r->query))
                return -1;
        } else if (n == 0) {
            r->body = next;
            r->body_len = (size_t)(end - next);
            return 0;
        } else if (p[0] == ' ' || p[0] == '\t') {
            if (!r->n_headers || extend_value(&r->headers[r->n_headers - 1], p, n))
                return -1;
        } else {
            const char *colon = memchr(p, ':', n);
            struct raw_header *nh;

            if (!colon)
                return -1;
            nh = realloc(r->headers, (r->n_headers + 1) * sizeof(*nh));
            if (!nh)
                return -1;
            r->headers = nh;
            nh[r->n_headers].name = dup_trim(p, (size_t)(colon - p));
            nh[r->n_headers].value = dup_trim(colon + 1, (size_t)(p + n - colon - 1));
            r->n_headers++;
            if (!nh[r->n_headers - 1].name || !nh[r->n_headers - 1].value)
                return -1;
        }
        p = next;
    }
    r->body = end;
    r->body_len = 0;
    return line_no > 0 ? 0 : -1;
}

static const char *find_header(const struct raw_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ---- case loading ------------------------------------------------------------------------ */

struct sigv4_case {
    struct raw_request raw;
    struct sigv4_request req;
    struct sigv4_header *headers;
    char *text;           /* the request file */
    json_t *context;      /* context.json, or NULL */
    char access_key[128]; /* from the captured Credential= */
    char region[64];
    char service[64];
    char *signed_list; /* SignedHeaders= of a captured Authorization, or NULL */
};

static int parse_iso_time(const char *s, time_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, se;
    char z = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 || z != 'Z')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *out = timegm(&tm);
    return 0;
}

static int parse_amz_date(const char *s, time_t *out)
{
    char iso[32];

    if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return -1;
    snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ", s, s + 4, s + 6, s + 9, s + 11,
             s + 13);
    return parse_iso_time(iso, out);
}

/* Copies the text after `key` up to a delimiter from `hay` into out. Returns 0 or -1. */
static int copy_field(const char *hay, const char *key, const char *delims, char *out, size_t cap)
{
    const char *p = strstr(hay, key);
    size_t n;

    if (!p)
        return -1;
    p += strlen(key);
    n = strcspn(p, delims);
    if (n >= cap)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* Reads Credential=AKID/date/region/service/aws4_request and SignedHeaders=... */
static int parse_authorization(const char *authz, struct sigv4_case *c)
{
    char cred[512], list[4096];
    char *parts[5], *save = NULL, *tok;
    size_t n = 0;

    if (copy_field(authz, "Credential=", ", ", cred, sizeof(cred)))
        return -1;
    for (tok = strtok_r(cred, "/", &save); tok && n < 5; tok = strtok_r(NULL, "/", &save))
        parts[n++] = tok;
    if (n != 5 || strlen(parts[0]) >= sizeof(c->access_key) ||
        strlen(parts[2]) >= sizeof(c->region) || strlen(parts[3]) >= sizeof(c->service))
        return -1;
    snprintf(c->access_key, sizeof(c->access_key), "%s", parts[0]);
    snprintf(c->region, sizeof(c->region), "%s", parts[2]);
    snprintf(c->service, sizeof(c->service), "%s", parts[3]);
    c->req.access_key = c->access_key;
    c->req.region = c->region;
    c->req.service = c->service;
    if (!copy_field(authz, "SignedHeaders=", ", ", list, sizeof(list))) {
        c->signed_list = strdup(list);
        if (!c->signed_list)
            return -1;
    }
    return 0;
}

static int in_signed_list(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p;) {
        size_t m = strcspn(p, ";");
        if (m == n && strncasecmp(p, name, n) == 0)
            return 1;
        p += m;
        if (*p == ';')
            p++;
    }
    return 0;
}

static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Applies context.json (the aws-c-auth suite's explicit inputs). */
static int apply_context(struct sigv4_case *c)
{
    json_t *creds = json_object_get(c->context, "credentials");
    json_t *v;
    const char *s;

    if (json_str(creds, "access_key_id"))
        c->req.access_key = json_str(creds, "access_key_id");
    if (json_str(creds, "secret_access_key"))
        c->req.secret_key = json_str(creds, "secret_access_key");
    if (json_str(creds, "token"))
        c->req.session_token = json_str(creds, "token");
    if (json_str(c->context, "region"))
        c->req.region = json_str(c->context, "region");
    if (json_str(c->context, "service"))
        c->req.service = json_str(c->context, "service");
    s = json_str(c->context, "timestamp");
    if (s && parse_iso_time(s, &c->req.when))
        return -1;
    v = json_object_get(c->context, "normalize");
    if (json_is_boolean(v))
        c->req.path_mode = json_is_true(v) ? SIGV4_PATH_NORMALIZE : SIGV4_PATH_KEEP;
    v = json_object_get(c->context, "sign_body");
    if (json_is_boolean(v))
        c->req.sign_content_sha256 = json_is_true(v);
    v = json_object_get(c->context, "omit_session_token");
    if (json_is_boolean(v))
        c->req.omit_session_token = json_is_true(v);
    return 0;
}

static void case_free(struct sigv4_case *c)
{
    raw_request_free(&c->raw);
    free(c->headers);
    free(c->text);
    free(c->signed_list);
    json_decref(c->context);
    memset(c, 0, sizeof(*c));
}

static int case_load(const char *dir, struct sigv4_case *c)
{
    size_t len = 0, ctx_len = 0;
    char *ctx_text = NULL;
    int captured = 0, rc = -1;
    const char *v;
    json_error_t jerr;

    memset(c, 0, sizeof(*c));
    c->text = read_whole(dir, "request.txt", &len);
    if (!c->text) {
        c->text = read_whole(dir, "request.http", &len);
        captured = 1;
    }
    if (!c->text) {
        fprintf(stderr, "hcpipe: %s: no request.txt or request.http\n", dir);
        goto out;
    }
    if (parse_request(c->text, len, &c->raw)) {
        fprintf(stderr, "hcpipe: %s: cannot parse the request\n", dir);
        goto out;
    }
    ctx_text = read_whole(dir, "context.json", &ctx_len);
    if (ctx_text) {
        c->context = json_loadb(ctx_text, ctx_len, 0, &jerr);
        if (!json_is_object(c->context)) {
            fprintf(stderr, "hcpipe: %s/context.json: %s\n", dir, jerr.text);
            goto out;
        }
    }

    /* Defaults: the fixed inputs; then what the request itself says; then context.json. */
    c->req.access_key = CASE_ACCESS_KEY;
    c->req.secret_key = CASE_SECRET_KEY;
    c->req.region = CASE_REGION;
    c->req.service = find_header(&c->raw, "X-Amz-Target") ? "athena" : "s3";
    if (parse_iso_time(CASE_TIME, &c->req.when))
        goto out;
    v = find_header(&c->raw, "X-Amz-Date");
    if (v && parse_amz_date(v, &c->req.when)) {
        fprintf(stderr, "hcpipe: %s: bad X-Amz-Date\n", dir);
        goto out;
    }
    v = find_header(&c->raw, "Authorization");
    if (v && parse_authorization(v, c)) {
        fprintf(stderr, "hcpipe: %s: bad Authorization header\n", dir);
        goto out;
    }
    v = find_header(&c->raw, "X-Amz-Security-Token");
    if (v) {
        c->req.session_token = v;
        c->req.omit_session_token =
            c->signed_list && !in_signed_list(c->signed_list, "x-amz-security-token");
    }
    v = find_header(&c->raw, "X-Amz-Content-SHA256");
    if (v) {
        c->req.payload_hash = v;
        c->req.sign_content_sha256 =
            !c->signed_list || in_signed_list(c->signed_list, "x-amz-content-sha256");
    }
    if (c->context && apply_context(c)) {
        fprintf(stderr, "hcpipe: %s/context.json: bad timestamp\n", dir);
        goto out;
    }

    /* Headers to sign: the captured SignedHeaders list when there is one; otherwise all (a
     * capture without it drops what botocore adds only after signing). The signer itself
     * drops hop-by-hop headers and supplies x-amz-date / token / content hash. */
    c->headers = calloc(c->raw.n_headers ? c->raw.n_headers : 1, sizeof(*c->headers));
    if (!c->headers)
        goto out;
    for (size_t i = 0; i < c->raw.n_headers; i++) {
        const char *name = c->raw.headers[i].name;
        if (c->signed_list && !in_signed_list(c->signed_list, name))
            continue;
        if (!c->signed_list && captured &&
            (strcasecmp(name, "Accept-Encoding") == 0 || strcasecmp(name, "Content-Length") == 0))
            continue;
        c->headers[c->req.n_headers].name = name;
        c->headers[c->req.n_headers].value = c->raw.headers[i].value;
        c->req.n_headers++;
    }
    c->req.headers = c->headers;
    c->req.method = c->raw.method;
    c->req.path = c->raw.path;
    c->req.query = c->raw.query;
    c->req.payload = c->raw.body;
    c->req.payload_len = c->raw.body_len;
    rc = 0;
out:
    free(ctx_text);
    if (rc)
        case_free(c);
    return rc;
}

int aws_cli_sign_case(const char *dir, struct sigv4_result *out)
{
    struct sigv4_case c;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (case_load(dir, &c))
        return -1;
    if (sigv4_sign(&c.req, out)) {
        fprintf(stderr, "hcpipe: %s: signing failed (bad input)\n", dir);
        goto out;
    }
    rc = 0;
out:
    case_free(&c);
    return rc;
}

/* ---- commands -------------------------------------------------------------------------- */

static int usage_error(const char *msg)
{
    fprintf(stderr, "hcpipe aws: %s\n%s", msg, usage_text);
    return 2;
}

static int cmd_sigv4_case(int argc, char **argv)
{
    const char *what = NULL, *dir = NULL, *text = NULL;
    struct sigv4_result res;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(argv[i], "--print") == 0 && i + 1 < argc) {
            what = argv[++i];
        } else if (strncmp(argv[i], "--print=", 8) == 0) {
            what = argv[i] + 8;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option");
        } else if (!dir) {
            dir = argv[i];
        } else {
            return usage_error("one case folder only");
        }
    }
    if (!dir)
        return usage_error("sigv4-case needs a case folder");
    if (!what)
        what = "authz";
    if (strcmp(what, "creq") && strcmp(what, "sts") && strcmp(what, "sig") && strcmp(what, "authz"))
        return usage_error("--print takes creq, sts, sig or authz");
    if (aws_cli_sign_case(dir, &res))
        return 1;
    if (strcmp(what, "creq") == 0)
        text = res.canonical_request;
    else if (strcmp(what, "sts") == 0)
        text = res.string_to_sign;
    else if (strcmp(what, "sig") == 0)
        text = res.signature;
    else
        text = res.authorization;
    if (fwrite(text, 1, strlen(text), stdout) == strlen(text) && fflush(stdout) == 0)
        rc = 0;
    sigv4_result_free(&res);
    return rc;
}

int aws_cli_main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(argv[1], "sigv4-case") == 0)
        return cmd_sigv4_case(argc - 1, argv + 1);
    return usage_error("unknown command");
}
