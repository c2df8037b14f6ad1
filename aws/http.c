/*
 * http.c: the AWS HTTP client (see http.h for the contract).
 *
 * Organisation, top to bottom:
 *   - small string helpers;
 *   - error bodies: JSON (jansson) and XML (expat) parsers, the retryable list;
 *   - the client: config defaults, endpoint resolution and its cache, S3 URLs;
 *   - the handle pool: idle curl easy handles kept per client, so sequential requests reuse
 *     the handle's live connections (curl_easy_reset() keeps them);
 *   - one attempt: URL split, SigV4 signing, curl options, body upload and download callbacks;
 *   - aws_request_perform(): the retry loop with capped exponential backoff and full jitter.
 *
 * Secrets (credentials, the Authorization header) are only held in local variables and wiped
 * with OPENSSL_cleanse before they are freed; nothing here logs.
 */
#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "aws/http.h"
#include "aws/sigv4.h"

#define HTTP_BODY_MAX    ((size_t)64 << 20)
#define HTTP_HEADERS_MAX ((size_t)256 << 10)
#define HTTP_POOL_MAX    16
#define HTTP_ENDPOINTS   16

/* ---- string helpers ---- */

static char *http_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- error bodies ---- */

static const char *const http_retry_codes[] = {
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "EC2ThrottledException",
};

int aws_error_retryable(const char *code, long status)
{
    if (status == 429 || status == 500 || status == 502 || status == 503 || status == 504)
        return 1;
    if (!code)
        return 0;
    for (size_t i = 0; i < sizeof(http_retry_codes) / sizeof(http_retry_codes[0]); i++)
        if (strcmp(code, http_retry_codes[i]) == 0)
            return 1;
    return 0;
}

/* "com.amazonaws.athena#TooManyRequestsException:http://..." -> "TooManyRequestsException". */
static char *http_error_type_strip(const char *t)
{
    const char *hash = strrchr(t, '#');
    size_t n;

    if (hash)
        t = hash + 1;
    n = strcspn(t, ":");
    while (n > 0 && isspace((unsigned char)t[n - 1]))
        n--;
    if (n == 0)
        return NULL;
    return http_strndup(t, n);
}

int aws_error_parse_json(const char *body, size_t len, char **code_out, char **message_out)
{
    json_t *root = NULL, *t, *m;
    char *code = NULL, *msg = NULL;
    int rc = -1;

    *code_out = NULL;
    *message_out = NULL;
    if (!body || len == 0)
        goto out;
    root = json_loadb(body, len, 0, NULL);
    if (!json_is_object(root))
        goto out;
    t = json_object_get(root, "__type");
    if (!json_is_string(t))
        t = json_object_get(root, "code");
    if (!json_is_string(t))
        goto out;
    code = http_error_type_strip(json_string_value(t));
    if (!code)
        goto out;
    m = json_object_get(root, "message");
    if (!json_is_string(m))
        m = json_object_get(root, "Message");
    if (json_is_string(m)) {
        msg = strdup(json_string_value(m));
        if (!msg)
            goto out;
    }
    *code_out = code;
    *message_out = msg;
    code = msg = NULL;
    rc = 0;
out:
    free(code);
    free(msg);
    json_decref(root);
    return rc;
}

struct xml_err {
    int depth;    /* current element depth */
    int in_error; /* depth of the innermost open <Error>, 0 = none */
    int field;    /* 1 = inside <Code>, 2 = inside <Message> */
    struct buf code, message;
};

static void XMLCALL xml_err_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xml_err *x = ud;
    const char *local = strrchr(name, ' '); /* namespace separator */

    (void)atts;
    local = local ? local + 1 : name;
    x->depth++;
    if (strcmp(local, "Error") == 0) {
        x->in_error = x->depth;
    } else if (x->in_error && x->depth == x->in_error + 1) {
        if (strcmp(local, "Code") == 0 && x->code.len == 0)
            x->field = 1;
        else if (strcmp(local, "Message") == 0 && x->message.len == 0)
            x->field = 2;
    }
}

static void XMLCALL xml_err_end(void *ud, const XML_Char *name)
{
    struct xml_err *x = ud;

    (void)name;
    x->field = 0;
    if (x->in_error == x->depth)
        x->in_error = 0;
    x->depth--;
}

static void XMLCALL xml_err_text(void *ud, const XML_Char *s, int len)
{
    struct xml_err *x = ud;

    if (x->field == 1)
        buf_append(&x->code, s, (size_t)len);
    else if (x->field == 2)
        buf_append(&x->message, s, (size_t)len);
}

int aws_error_parse_xml(const char *body, size_t len, char **code_out, char **message_out)
{
    struct xml_err x = {0};
    XML_Parser p = NULL;
    int rc = -1;

    *code_out = NULL;
    *message_out = NULL;
    buf_init(&x.code, 1024);
    buf_init(&x.message, 64 << 10);
    if (!body || len == 0 || len > (size_t)HTTP_BODY_MAX)
        goto out;
    p = XML_ParserCreateNS(NULL, ' ');
    if (!p)
        goto out;
    XML_SetUserData(p, &x);
    XML_SetElementHandler(p, xml_err_start, xml_err_end);
    XML_SetCharacterDataHandler(p, xml_err_text);
    if (XML_Parse(p, body, (int)len, 1) != XML_STATUS_OK)
        goto out;
    if (x.code.len == 0 || x.code.failed)
        goto out;
    *code_out = buf_steal(&x.code, NULL);
    *message_out = buf_steal(&x.message, NULL);
    rc = *code_out ? 0 : -1;
out:
    if (p)
        XML_ParserFree(p);
    buf_free(&x.code);
    buf_free(&x.message);
    return rc;
}

/* ---- the client ---- */

struct http_endpoint {
    char *service;
    char *url;
    int path_style;
};

struct aws_client {
    struct aws_client_config cfg;
    char *region;
    pthread_mutex_t mu; /* guards pool and endpoints */
    CURL *pool[HTTP_POOL_MAX];
    int n_pool;
    struct http_endpoint endpoints[HTTP_ENDPOINTS];
    int n_endpoints;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static int http_global_rc;

static void http_global_init(void)
{
    http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

struct aws_client *aws_client_new(const struct aws_client_config *cfg)
{
    struct aws_client *c;
    const char *region;
    char profile_region[64];

    pthread_once(&http_once, http_global_init);
    if (http_global_rc != 0)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = *cfg;
    if (c->cfg.connect_timeout_ms <= 0)
        c->cfg.connect_timeout_ms = 3000;
    if (c->cfg.total_timeout_ms <= 0)
        c->cfg.total_timeout_ms = 30000;
    if (c->cfg.max_attempts <= 0)
        c->cfg.max_attempts = 3;
    if (c->cfg.backoff_base_ms <= 0)
        c->cfg.backoff_base_ms = 100;
    if (c->cfg.backoff_cap_ms <= 0)
        c->cfg.backoff_cap_ms = 20000;
    region = cfg->region;
    if (!region || !*region)
        region = getenv("AWS_REGION");
    if (!region || !*region)
        region = getenv("AWS_DEFAULT_REGION");
    if ((!region || !*region) && aws_profile_region(profile_region, sizeof(profile_region)) == 0)
        region = profile_region;
    if (!region || !*region)
        region = "us-east-1";
    c->region = strdup(region);
    if (!c->region) {
        free(c);
        return NULL;
    }
    c->cfg.region = c->region;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void aws_client_free(struct aws_client *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_pool; i++)
        curl_easy_cleanup(c->pool[i]);
    for (int i = 0; i < c->n_endpoints; i++) {
        free(c->endpoints[i].service);
        free(c->endpoints[i].url);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->region);
    free(c);
}

const char *aws_client_region(const struct aws_client *c)
{
    return c->region;
}

/* Builds the endpoint of `service` from the environment and the region (new string). */
static char *http_endpoint_build(const char *service, const char *region, int *path_style_out)
{
    char var[96];
    const char *v;
    size_t n, i;
    char *url;
    int is_s3 = strcmp(service, "s3") == 0;
    const char *suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";

    n = (size_t)snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", service);
    for (i = strlen("AWS_ENDPOINT_URL_"); i < n && i < sizeof(var) - 1; i++) {
        if (var[i] == '-' || var[i] == ' ')
            var[i] = '_';
        else
            var[i] = (char)toupper((unsigned char)var[i]);
    }
    v = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (v && strcasecmp(v, "true") == 0) {
        v = NULL;
    } else {
        v = getenv(var);
        if (!v || !*v)
            v = getenv("AWS_ENDPOINT_URL");
    }
    if (v && *v) {
        n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        *path_style_out = is_s3;
        return http_strndup(v, n);
    }
    *path_style_out = 0;
    n = strlen(service) + strlen(region) + strlen(suffix) + 16;
    url = malloc(n);
    if (url)
        snprintf(url, n, "https://%s.%s.%s", service, region, suffix);
    return url;
}

const char *aws_client_endpoint(struct aws_client *c, const char *service, int *path_style_out)
{
    const char *res = NULL;
    char *url = NULL, *svc = NULL;
    int ps = 0;

    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n_endpoints; i++) {
        if (strcmp(c->endpoints[i].service, service) == 0) {
            res = c->endpoints[i].url;
            ps = c->endpoints[i].path_style;
            goto out;
        }
    }
    if (c->n_endpoints == HTTP_ENDPOINTS)
        goto out;
    url = http_endpoint_build(service, c->region, &ps);
    svc = strdup(service);
    if (!url || !svc)
        goto out;
    c->endpoints[c->n_endpoints].service = svc;
    c->endpoints[c->n_endpoints].url = url;
    c->endpoints[c->n_endpoints].path_style = ps;
    c->n_endpoints++;
    res = url;
    url = svc = NULL;
out:
    pthread_mutex_unlock(&c->mu);
    free(url);
    free(svc);
    if (path_style_out)
        *path_style_out = ps;
    return res;
}

/* ---- the handle pool ---- */

static CURL *http_handle_get(struct aws_client *c)
{
    CURL *h = NULL;

    pthread_mutex_lock(&c->mu);
    if (c->n_pool > 0)
        h = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

static void http_handle_put(struct aws_client *c, CURL *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->n_pool < HTTP_POOL_MAX) {
        c->pool[c->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one attempt ---- */

struct http_url {
    char *hostport; /* Host header value: host, plus :port when not the scheme's default */
    char *path;     /* "/..." as on the wire */
    char *query;    /* after '?', or NULL */
};

static void http_url_free(struct http_url *u)
{
    free(u->hostport);
    free(u->path);
    free(u->query);
}

/* Splits scheme://authority/path?query without any normalisation. */
static int http_url_split(const char *url, struct http_url *u)
{
    const char *p = strstr(url, "://"), *auth, *auth_end, *path_end, *at, *port;
    int https;
    size_t n;

    memset(u, 0, sizeof(*u));
    if (!p)
        return -1;
    https = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
    if (!https && !((size_t)(p - url) == 4 && strncasecmp(url, "http", 4) == 0))
        return -1;
    auth = p + 3;
    auth_end = auth + strcspn(auth, "/?#");
    at = memchr(auth, '@', (size_t)(auth_end - auth));
    if (at)
        auth = at + 1;
    if (auth == auth_end)
        return -1;
    /* Port: after the last ':' unless inside an IPv6 literal. */
    port = NULL;
    for (const char *q = auth_end; q > auth; q--) {
        if (q[-1] == ']')
            break;
        if (q[-1] == ':') {
            port = q - 1;
            break;
        }
    }
    n = (size_t)(auth_end - auth);
    if (port) {
        const char *digits = port + 1;
        size_t dn = (size_t)(auth_end - digits);

        if (dn == 0 || (https && dn == 3 && strncmp(digits, "443", 3) == 0) ||
            (!https && dn == 2 && strncmp(digits, "80", 2) == 0))
            n = (size_t)(port - auth);
    }
    u->hostport = http_strndup(auth, n);
    for (size_t i = 0; u->hostport && u->hostport[i]; i++)
        u->hostport[i] = (char)tolower((unsigned char)u->hostport[i]);
    path_end = auth_end + strcspn(auth_end, "?#");
    if (path_end == auth_end)
        u->path = strdup("/");
    else
        u->path = http_strndup(auth_end, (size_t)(path_end - auth_end));
    if (*path_end == '?') {
        const char *qs = path_end + 1;

        u->query = http_strndup(qs, strcspn(qs, "#"));
        if (!u->query)
            goto fail;
    }
    if (!u->hostport || !u->path)
        goto fail;
    return 0;
fail:
    http_url_free(u);
    return -1;
}

/* SHA-256 of a file as lowercase hex; the size into *size_out. */
static int http_file_sha256(const char *path, char out[65], int64_t *size_out)
{
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = NULL;
    unsigned char md[32], chunk[65536];
    unsigned int mdlen = 0;
    int64_t total = 0;
    size_t n;
    int rc = -1;

    if (!f)
        return -1;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (EVP_DigestUpdate(ctx, chunk, n) != 1)
            goto out;
        total += (int64_t)n;
    }
    if (ferror(f) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32)
        goto out;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    *size_out = total;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

static int64_t http_file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    int64_t sz = -1;

    if (!f)
        return -1;
    if (fseeko(f, 0, SEEK_END) == 0)
        sz = (int64_t)ftello(f);
    fclose(f);
    return sz;
}

struct http_xfer {
    const struct aws_request *req;
    struct aws_response *resp;
    CURL *h;
    int decided;      /* the body's destination is decided (first write) */
    int streaming;    /* body goes to on_data */
    int aborted;      /* on_data asked to stop */
    size_t delivered; /* bytes handed to on_data */
    const char *mem;  /* upload from memory */
    size_t mem_len, mem_off;
    FILE *file; /* upload from a file */
};

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct http_xfer *x = ud;
    size_t n = size * nmemb;

    if (!x->decided) {
        long status = 0;

        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        x->streaming = x->req->on_data && status >= 200 && status < 300;
        x->decided = 1;
    }
    if (x->streaming) {
        if (n > 0 && x->req->on_data(x->req->on_data_ctx, data, n) != 0) {
            x->aborted = 1;
            return 0;
        }
        x->delivered += n;
        return n;
    }
    if (buf_append(&x->resp->body, data, n) != 0)
        return 0;
    return n;
}

static size_t http_header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct http_xfer *x = ud;
    size_t n = size * nmemb;

    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
        buf_reset(&x->resp->headers);
    if (buf_append(&x->resp->headers, data, n) != 0)
        return 0;
    return n;
}

static size_t http_read_cb(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct http_xfer *x = ud;
    size_t n = size * nmemb;

    if (x->file) {
        size_t got = fread(dst, 1, n, x->file);

        if (got == 0 && ferror(x->file))
            return CURL_READFUNC_ABORT;
        return got;
    }
    if (n > x->mem_len - x->mem_off)
        n = x->mem_len - x->mem_off;
    memcpy(dst, x->mem + x->mem_off, n);
    x->mem_off += n;
    return n;
}

static int http_seek_cb(void *ud, curl_off_t offset, int origin)
{
    struct http_xfer *x = ud;

    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    if (x->file)
        return fseeko(x->file, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK
                                                             : CURL_SEEKFUNC_FAIL;
    if ((size_t)offset > x->mem_len)
        return CURL_SEEKFUNC_FAIL;
    x->mem_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void http_response_reset(struct aws_response *r)
{
    buf_free(&r->body);
    buf_init(&r->body, HTTP_BODY_MAX);
    buf_free(&r->headers);
    buf_init(&r->headers, HTTP_HEADERS_MAX);
    r->status = 0;
    free(r->etag);
    free(r->content_type);
    free(r->request_id);
    free(r->content_range);
    free(r->last_modified);
    r->etag = r->content_type = r->request_id = r->content_range = r->last_modified = NULL;
    r->content_length = -1;
    free(r->error_code);
    free(r->error_message);
    r->error_code = r->error_message = NULL;
}

static int http_set_error(struct aws_response *r, const char *code, const char *msg)
{
    free(r->error_code);
    free(r->error_message);
    r->error_code = strdup(code);
    r->error_message = msg ? strdup(msg) : NULL;
    return -1;
}

/* Fills error_code/error_message of a non-2xx response from its body or status. */
static void http_parse_error(struct aws_response *r)
{
    char *code = NULL, *msg = NULL, *type_hdr;
    const char *b = r->body.data;
    size_t len = r->body.len;

    while (len > 0 && isspace((unsigned char)*b)) {
        b++;
        len--;
    }
    if (len > 0 && *b == '{')
        aws_error_parse_json(b, len, &code, &msg);
    else if (len > 0 && *b == '<')
        aws_error_parse_xml(b, len, &code, &msg);
    if (!code) {
        type_hdr = aws_response_header(r, "x-amzn-ErrorType");
        if (type_hdr)
            code = http_error_type_strip(type_hdr);
        free(type_hdr);
    }
    if (!code) {
        char num[24];
        const char *reason = NULL;
        size_t rlen = 0;

        /* "HTTP/1.1 404 Not Found\r\n": the reason phrase as the message. */
        if (r->headers.data) {
            const char *sp = strchr(r->headers.data, ' ');

            if (sp && (sp = strchr(sp + 1, ' '))) {
                reason = sp + 1;
                rlen = strcspn(reason, "\r\n");
            }
        }
        snprintf(num, sizeof(num), "%ld", r->status);
        code = strdup(num);
        if (!msg && reason && rlen > 0)
            msg = http_strndup(reason, rlen);
    }
    free(r->error_code);
    free(r->error_message);
    r->error_code = code;
    r->error_message = msg;
}

char *aws_response_header(const struct aws_response *resp, const char *name)
{
    const char *p = resp->headers.data;
    size_t nlen = strlen(name);

    if (!p)
        return NULL;
    while (*p) {
        const char *eol = p + strcspn(p, "\r\n");

        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            const char *e = eol;

            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            return http_strndup(v, (size_t)(e - v));
        }
        p = eol;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    return NULL;
}

static void http_collect_headers(struct aws_response *r)
{
    char *cl;

    free(r->etag);
    free(r->content_type);
    free(r->request_id);
    free(r->content_range);
    free(r->last_modified);
    r->etag = aws_response_header(r, "ETag");
    r->content_type = aws_response_header(r, "Content-Type");
    r->request_id = aws_response_header(r, "x-amzn-RequestId");
    if (!r->request_id)
        r->request_id = aws_response_header(r, "x-amz-request-id");
    r->content_range = aws_response_header(r, "Content-Range");
    r->last_modified = aws_response_header(r, "Last-Modified");
    r->content_length = -1;
    cl = aws_response_header(r, "Content-Length");
    if (cl) {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(cl, &end, 10);
        if (errno == 0 && end != cl && *end == '\0' && v >= 0)
            r->content_length = (int64_t)v;
        free(cl);
    }
}

/* Appends "Name: value" to a curl list (an empty value as "Name;", as curl wants it). */
static struct curl_slist *http_add_header(struct curl_slist *l, int *failed, const char *name,
                                          const char *value)
{
    struct buf b;
    struct curl_slist *n;

    if (*failed)
        return l;
    buf_init(&b, 64 << 10);
    if (value && *value)
        buf_printf(&b, "%s: %s", name, value);
    else
        buf_printf(&b, "%s;", name);
    if (b.failed || !b.data) {
        *failed = 1;
        buf_free(&b);
        return l;
    }
    n = curl_slist_append(l, b.data);
    OPENSSL_cleanse(b.data, b.len); /* may be the Authorization header */
    buf_free(&b);
    if (!n) {
        *failed = 1;
        return l;
    }
    return n;
}

static int http_has_header(const struct aws_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return 1;
    return 0;
}

/* The outcome of one attempt. */
enum http_outcome { HTTP_OK, HTTP_RETRY, HTTP_FAIL };

struct http_prepared {
    struct http_url url;
    char payload_hash[65]; /* for file bodies (or UNSIGNED-PAYLOAD) */
    int have_hash;
    int64_t file_size;
};

static enum http_outcome http_attempt(struct aws_client *c, CURL *h, const struct aws_request *req,
                                      const struct http_prepared *prep, struct aws_response *resp)
{
    struct aws_credentials creds = {0};
    struct sigv4_result sig = {0};
    struct sigv4_header *sh = NULL;
    struct curl_slist *hl = NULL;
    struct http_xfer x = {0};
    char err[256] = "", errbuf[CURL_ERROR_SIZE] = "";
    int hfailed = 0, signed_ok = 0;
    enum http_outcome out = HTTP_FAIL;
    int is_s3 = strcmp(req->service, "s3") == 0;
    int is_head = strcasecmp(req->method, "HEAD") == 0;
    int has_body = req->body_file || (req->body && req->body_len > 0) ||
                   strcasecmp(req->method, "POST") == 0 || strcasecmp(req->method, "PUT") == 0;
    CURLcode cc;

    http_response_reset(resp);
    x.req = req;
    x.resp = resp;
    x.h = h;

    /* Sign. */
    if (c->cfg.credentials) {
        if (aws_credentials_get(c->cfg.credentials, &creds, err, sizeof(err)) != 0) {
            http_set_error(resp, "CredentialsError", err);
            goto out;
        }
        sh = calloc(req->n_headers + 1, sizeof(*sh));
        if (!sh) {
            http_set_error(resp, "InternalError", "out of memory");
            goto out;
        }
        sh[0].name = "Host";
        sh[0].value = prep->url.hostport;
        for (size_t i = 0; i < req->n_headers; i++) {
            sh[i + 1].name = req->headers[i].name;
            sh[i + 1].value = req->headers[i].value ? req->headers[i].value : "";
        }
        struct sigv4_request sr = {
            .method = req->method,
            .path = prep->url.path,
            .query = prep->url.query,
            .headers = sh,
            .n_headers = req->n_headers + 1,
            .payload_hash = prep->have_hash ? prep->payload_hash : NULL,
            .payload = req->body ? req->body : "",
            .payload_len = req->body ? req->body_len : 0,
            .region = c->region,
            .service = req->service,
            .when = c->cfg.now ? c->cfg.now() : time(NULL),
            .access_key = creds.access_key_id,
            .secret_key = creds.secret_access_key,
            .session_token = creds.session_token,
            .sign_content_sha256 = is_s3,
        };
        if (sigv4_sign(&sr, &sig) != 0) {
            http_set_error(resp, "InternalError", "signing failed");
            goto out;
        }
        signed_ok = 1;
    }

    /* Headers: exactly the signed ones, plus unsigned transport ones. */
    hl = http_add_header(hl, &hfailed, "Host", prep->url.hostport);
    for (size_t i = 0; i < req->n_headers; i++)
        hl = http_add_header(hl, &hfailed, req->headers[i].name, req->headers[i].value);
    if (signed_ok) {
        hl = http_add_header(hl, &hfailed, "X-Amz-Date", sig.amz_date);
        if (creds.session_token)
            hl = http_add_header(hl, &hfailed, "X-Amz-Security-Token", creds.session_token);
        if (is_s3)
            hl = http_add_header(hl, &hfailed, "x-amz-content-sha256", sig.payload_hash);
        hl = http_add_header(hl, &hfailed, "Authorization", sig.authorization);
    }
    if (!http_has_header(req, "Content-Type"))
        hl = curl_slist_append(hl, "Content-Type:"); /* no curl default */
    hl = curl_slist_append(hl, "Expect:");
    if (!hl || hfailed) {
        http_set_error(resp, "InternalError", "out of memory");
        goto out;
    }

    curl_easy_reset(h); /* keeps live connections */
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->cfg.total_timeout_ms);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hcpipe-aws/1");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, http_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    if (is_head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
        if (req->body_file) {
            x.file = fopen(req->body_file, "rb");
            if (!x.file) {
                http_set_error(resp, "InvalidRequest", "cannot open the body file");
                goto out;
            }
        } else {
            x.mem = req->body ? req->body : "";
            x.mem_len = req->body ? req->body_len : 0;
        }
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, http_read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, &x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, http_seek_cb);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->body_file ? prep->file_size : (int64_t)x.mem_len));
        if (strcasecmp(req->method, "PUT") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (strcasecmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }

    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (cc != CURLE_OK) {
        if (x.aborted) {
            http_set_error(resp, "Aborted", "the body consumer stopped the transfer");
            goto out;
        }
        http_set_error(resp, "NetworkError", errbuf[0] ? errbuf : curl_easy_strerror(cc));
        resp->status = 0;
        /* Not retried: bytes already streamed, a bad URL or TLS verification failure. */
        if (x.delivered > 0 || cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ||
            cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_READ_ERROR ||
            cc == CURLE_ABORTED_BY_CALLBACK)
            goto out;
        out = HTTP_RETRY;
        goto out;
    }
    http_collect_headers(resp);
    if (resp->status >= 200 && resp->status < 300) {
        out = HTTP_OK;
        goto out;
    }
    http_parse_error(resp);
    out = aws_error_retryable(resp->error_code, resp->status) ? HTTP_RETRY : HTTP_FAIL;
out:
    if (x.file)
        fclose(x.file);
    if (hl) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        for (struct curl_slist *l = hl; l; l = l->next) /* X-Amz-Security-Token */
            OPENSSL_cleanse(l->data, strlen(l->data));
        curl_slist_free_all(hl);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL); /* errbuf dies with this frame */
    if (signed_ok) {
        if (sig.authorization)
            OPENSSL_cleanse(sig.authorization, strlen(sig.authorization));
        sigv4_result_free(&sig);
    }
    free(sh);
    aws_credentials_clear(&creds);
    return out;
}

/* Uniform random in [0, n]. */
static long http_jitter(long n)
{
    uint64_t r = 0;

    if (n <= 0)
        return 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint64_t)time(NULL) * 2654435761u;
    return (long)(r % ((uint64_t)n + 1));
}

static void http_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int aws_request_perform(struct aws_client *c, const struct aws_request *req,
                        struct aws_response *resp)
{
    struct http_prepared prep;
    CURL *h = NULL;
    enum http_outcome oc = HTTP_FAIL;

    memset(resp, 0, sizeof(*resp));
    memset(&prep, 0, sizeof(prep));
    buf_init(&resp->body, HTTP_BODY_MAX);
    buf_init(&resp->headers, HTTP_HEADERS_MAX);
    resp->content_length = -1;
    if (!req->service || !req->method || !req->url || http_url_split(req->url, &prep.url) != 0) {
        http_set_error(resp, "InvalidRequest", "bad request description or URL");
        goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *n = req->headers[i].name, *v = req->headers[i].value;

        if (!n || !*n || n[strcspn(n, ": \t\r\n")] != '\0' || (v && strpbrk(v, "\r\n"))) {
            http_set_error(resp, "InvalidRequest", "bad header name or value");
            goto out;
        }
    }
    if (req->unsigned_payload) {
        snprintf(prep.payload_hash, sizeof(prep.payload_hash), "%s", SIGV4_UNSIGNED_PAYLOAD);
        prep.have_hash = 1;
        if (req->body_file)
            prep.file_size = http_file_size(req->body_file);
    } else if (req->body_file) {
        if (http_file_sha256(req->body_file, prep.payload_hash, &prep.file_size) != 0)
            prep.file_size = -1;
        prep.have_hash = 1;
    }
    if (req->body_file && prep.file_size < 0) {
        http_set_error(resp, "InvalidRequest", "cannot read the body file");
        goto out;
    }
    h = http_handle_get(c);
    if (!h) {
        http_set_error(resp, "InternalError", "curl_easy_init failed");
        goto out;
    }
    for (int attempt = 1; attempt <= c->cfg.max_attempts; attempt++) {
        resp->attempts = attempt;
        oc = http_attempt(c, h, req, &prep, resp);
        if (oc != HTTP_RETRY || attempt == c->cfg.max_attempts)
            break;
        {
            long ceiling = c->cfg.backoff_cap_ms;
            int shift = attempt - 1;

            if (shift < 30 && c->cfg.backoff_base_ms <= (c->cfg.backoff_cap_ms >> shift))
                ceiling = c->cfg.backoff_base_ms << shift;
            http_sleep_ms(http_jitter(ceiling));
        }
    }
out:
    http_handle_put(c, h);
    http_url_free(&prep.url);
    return oc == HTTP_OK ? 0 : -1;
}

void aws_response_free(struct aws_response *resp)
{
    if (!resp)
        return;
    buf_free(&resp->body);
    buf_free(&resp->headers);
    free(resp->etag);
    free(resp->content_type);
    free(resp->request_id);
    free(resp->content_range);
    free(resp->last_modified);
    free(resp->error_code);
    free(resp->error_message);
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
}
