/*
 * sigv4.c: AWS Signature Version 4 (Authorization header), following aws-protocols.md section C.
 *
 * Organisation, in the order a signature is computed:
 *   - hashing helpers (EVP_Digest / HMAC one-shot, hex);
 *   - URI encoding, percent-decoding and the canonical URI (normalised for most services,
 *     encoded once for S3);
 *   - the canonical query string (decode, re-encode, sort by name then value);
 *   - the canonical headers (lower-case, fold whitespace, join repeats, sort);
 *   - the signing-key cache (mutex, LRU of a few slots, wiped on eviction);
 *   - sigv4_sign(), a linear pipeline with one cleanup label.
 * Every text is built in a capped `struct buf`; any failed append surfaces as one -1 at the end.
 */
#include "aws/sigv4.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "aws/buf.h"

#define SIGV4_MAX_TEXT   (16u << 20) /* cap on any canonical text we build */
#define SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define KEY_CACHE_SLOTS  8
#define KEY_CACHE_STRLEN 64 /* region/service longer than this are derived, never cached */

static const char hexdigits_lower[] = "0123456789abcdef";
static const char hexdigits_upper[] = "0123456789ABCDEF";

/* ---- hashing ---------------------------------------------------------------------------- */

static void hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdigits_lower[in[i] >> 4];
        out[2 * i + 1] = hexdigits_lower[in[i] & 15];
    }
    out[2 * len] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char empty[1] = "";

    if (!data)
        data = empty;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    hex_encode(md, 32, out);
}

/* HMAC-SHA256 of data under key into out (32 bytes). Returns 0 or -1. */
static int hmac256(const void *key, size_t keylen, const void *data, size_t datalen,
                   unsigned char out[32])
{
    unsigned int outlen = 0;
    static const unsigned char empty[1] = {0};

    if (!HMAC(EVP_sha256(), key, (int)keylen, datalen ? data : empty, datalen, out, &outlen) ||
        outlen != 32)
        return -1;
    return 0;
}

/* Puts b in the failed state (as a failed append would), so the caller's final check sees it. */
static void mark_failed(struct buf *b)
{
    buf_free(b);
    b->failed = 1;
}

/* ---- URI encoding and the canonical URI ------------------------------------------------- */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Appends the encoding of s[0..len). In S3 mode ("once") a valid %XX escape is kept as is. */
static void encode_into(struct buf *b, const char *s, size_t len, int keep_slash, int once)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            buf_putc(b, (char)c);
        } else if (once && c == '%' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            buf_append(b, s + i, 3);
            i += 2;
        } else {
            char esc[3] = {'%', hexdigits_upper[c >> 4], hexdigits_upper[c & 15]};
            buf_append(b, esc, 3);
        }
    }
}

char *sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    struct buf b;

    buf_init(&b, SIGV4_MAX_TEXT);
    encode_into(&b, s, len, keep_slash, 0);
    if (buf_putc(&b, '\0'))
        return NULL;
    b.len--; /* the NUL above only makes an empty result non-NULL */
    return buf_steal(&b, NULL);
}

/* Percent-decodes s[0..len) into a new buffer (no '+' rule). Returns the buffer's data or NULL;
 * *out_len receives the decoded length (the data may contain NUL bytes). */
static char *percent_decode(const char *s, size_t len, size_t *out_len)
{
    struct buf b;
    char *res;

    buf_init(&b, SIGV4_MAX_TEXT);
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            buf_putc(&b, (char)(hi << 4 | lo));
            i += 2;
        } else {
            buf_putc(&b, s[i]);
        }
    }
    buf_putc(&b, '\0');
    res = buf_steal(&b, out_len);
    if (res)
        (*out_len)--;
    return res;
}

/* Removes empty, "." and ".." segments of path[0..len) into b ("/" at least). */
static void normalize_path(struct buf *b, const char *path, size_t len)
{
    size_t start = b->len, p = 0, last_len = 0;
    const char *last = path;

    while (p <= len) {
        const char *seg = path + p;
        const char *slash = memchr(seg, '/', len - p);
        size_t n = slash ? (size_t)(slash - seg) : len - p;

        last = seg;
        last_len = n;
        if (n == 0 || (n == 1 && seg[0] == '.')) {
            /* skip */
        } else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            while (b->data && b->len > start && b->data[b->len - 1] != '/')
                b->len--;
            if (b->data && b->len > start)
                b->len--; /* the '/' before the popped segment */
            if (b->data)
                b->data[b->len] = '\0';
        } else {
            buf_putc(b, '/');
            buf_append(b, seg, n);
        }
        p += n + 1;
    }
    if (b->failed)
        return;
    if (b->len == start) {
        buf_putc(b, '/');
    } else if (last_len == 0 || (last_len == 1 && last[0] == '.') ||
               (last_len == 2 && last[0] == '.' && last[1] == '.')) {
        buf_putc(b, '/');
    }
}

static int is_s3(const char *service)
{
    return strcmp(service, "s3") == 0;
}

static void canonical_uri(struct buf *b, const struct sigv4_request *req)
{
    const char *path = req->path && req->path[0] ? req->path : "/";
    size_t len = strlen(path);
    struct buf norm;

    if (is_s3(req->service)) {
        encode_into(b, path, len, 1, 1);
        return;
    }
    if (req->path_mode == SIGV4_PATH_KEEP) {
        encode_into(b, path, len, 1, 0);
        return;
    }
    buf_init(&norm, SIGV4_MAX_TEXT);
    normalize_path(&norm, path, len);
    if (norm.failed)
        mark_failed(b);
    else
        encode_into(b, norm.data, norm.len, 1, 0);
    buf_free(&norm);
}

/* ---- canonical query string -------------------------------------------------------------- */

struct qparam {
    char *name;  /* encoded */
    char *value; /* encoded */
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Decodes then re-encodes a query component into a new string. */
static char *query_component(const char *s, size_t len)
{
    size_t dlen = 0;
    char *dec = percent_decode(s, len, &dlen);
    char *enc;

    if (!dec)
        return NULL;
    enc = sigv4_uri_encode(dec, dlen, 0);
    free(dec);
    return enc;
}

static void canonical_query(struct buf *b, const char *query)
{
    struct qparam *params = NULL;
    size_t n = 0, cap = 0, qlen;
    const char *p;
    int bad = 0;

    if (!query || !*query)
        return;
    qlen = strlen(query);
    for (p = query; p <= query + qlen && !bad;) {
        const char *amp = memchr(p, '&', (size_t)(query + qlen - p));
        size_t n_piece = amp ? (size_t)(amp - p) : (size_t)(query + qlen - p);
        const char *eq = memchr(p, '=', n_piece);

        if (n_piece > 0) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct qparam *np = realloc(params, ncap * sizeof(*np));
                if (!np) {
                    bad = 1;
                    break;
                }
                params = np;
                cap = ncap;
            }
            params[n].name = query_component(p, eq ? (size_t)(eq - p) : n_piece);
            params[n].value =
                eq ? query_component(eq + 1, (size_t)(p + n_piece - eq - 1)) : strdup("");
            n++;
            if (!params[n - 1].name || !params[n - 1].value)
                bad = 1;
        }
        p += n_piece + 1;
    }
    if (!bad) {
        qsort(params, n, sizeof(*params), qparam_cmp);
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(b, '&');
            buf_puts(b, params[i].name);
            buf_putc(b, '=');
            buf_puts(b, params[i].value);
        }
    } else {
        mark_failed(b);
    }
    for (size_t i = 0; i < n; i++) {
        free(params[i].name);
        free(params[i].value);
    }
    free(params);
}

/* ---- canonical headers ------------------------------------------------------------------ */

struct chdr {
    char *name;   /* lower-cased, malloc'ed */
    char *value;  /* trimmed and folded, malloc'ed */
    size_t order; /* position in the request, keeps repeats in the order sent */
};

static const char *const unsigned_headers[] = {
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims and folds inner whitespace runs into one space; returns a new string or NULL. */
static char *fold_value(const char *v)
{
    size_t len = strlen(v), o = 0;
    char *out = malloc(len + 1);
    int pending = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (is_ws(v[i])) {
            pending = o > 0;
            continue;
        }
        if (pending)
            out[o++] = ' ';
        pending = 0;
        out[o++] = v[i];
    }
    out[o] = '\0';
    return out;
}

/* Lower-cases a valid header name into a new string; NULL when invalid or ENOMEM. */
static char *lower_name(const char *name)
{
    size_t len = strlen(name);
    char *out;

    if (len == 0)
        return NULL;
    out = malloc(len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (i < len && (c <= 0x20 || c >= 0x7f || c == ':')) {
            free(out);
            return NULL;
        }
        out[i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    return out;
}

static int chdr_cmp(const void *a, const void *b)
{
    const struct chdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int is_unsigned_header(const char *lname)
{
    for (size_t i = 0; i < sizeof(unsigned_headers) / sizeof(unsigned_headers[0]); i++)
        if (strcmp(lname, unsigned_headers[i]) == 0)
            return 1;
    return 0;
}

/* Adds one header (the name already lower-cased and owned by the caller until success). */
static int chdr_push(struct chdr *h, size_t *n, char *lname, const char *value)
{
    char *v = fold_value(value ? value : "");

    if (!v)
        return -1;
    h[*n].name = lname;
    h[*n].value = v;
    h[*n].order = *n;
    (*n)++;
    return 0;
}

/* Builds the canonical header block (lines ending in '\n') and the signed-header list. */
static int canonical_headers(const struct sigv4_request *req, const char *amz_date,
                             const char *payload_hash, struct buf *block, struct buf *signed_list)
{
    struct chdr *h = NULL;
    size_t n = 0;
    int rc = -1, have_host = 0;
    int sign_token = req->session_token && !req->omit_session_token;
    char *lname = NULL;

    if (req->n_headers > SIZE_MAX / sizeof(*h) - 4)
        goto out;
    h = calloc(req->n_headers + 3, sizeof(*h));
    if (!h)
        goto out;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!req->headers[i].name)
            goto out;
        lname = lower_name(req->headers[i].name);
        if (!lname)
            goto out;
        if (is_unsigned_header(lname) || strcmp(lname, "x-amz-date") == 0 ||
            (req->session_token && strcmp(lname, "x-amz-security-token") == 0) ||
            (req->sign_content_sha256 && strcmp(lname, "x-amz-content-sha256") == 0)) {
            free(lname);
            lname = NULL;
            continue;
        }
        if (strcmp(lname, "host") == 0)
            have_host = 1;
        if (chdr_push(h, &n, lname, req->headers[i].value))
            goto out;
        lname = NULL;
    }
    if (!have_host)
        goto out;
    lname = strdup("x-amz-date");
    if (!lname || chdr_push(h, &n, lname, amz_date))
        goto out;
    lname = NULL;
    if (sign_token) {
        lname = strdup("x-amz-security-token");
        if (!lname || chdr_push(h, &n, lname, req->session_token))
            goto out;
        lname = NULL;
    }
    if (req->sign_content_sha256) {
        lname = strdup("x-amz-content-sha256");
        if (!lname || chdr_push(h, &n, lname, payload_hash))
            goto out;
        lname = NULL;
    }
    qsort(h, n, sizeof(*h), chdr_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(h[i].name, h[i - 1].name) == 0) {
            buf_putc(block, ',');
            buf_puts(block, h[i].value);
            continue;
        }
        if (i > 0) {
            buf_putc(block, '\n');
            buf_putc(signed_list, ';');
        }
        buf_puts(block, h[i].name);
        buf_putc(block, ':');
        buf_puts(block, h[i].value);
        buf_puts(signed_list, h[i].name);
    }
    buf_putc(block, '\n');
    rc = (block->failed || signed_list->failed) ? -1 : 0;
out:
    free(lname);
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    return rc;
}

/* ---- signing-key cache ------------------------------------------------------------------ */

struct key_slot {
    int used;                       /* slot holds a key */
    unsigned long stamp;            /* last use, for LRU eviction */
    unsigned char secret_hash[32];  /* SHA-256 of the secret; the secret itself is not kept */
    char date[9];                   /* YYYYMMDD */
    char region[KEY_CACHE_STRLEN];  /* credential-scope region */
    char service[KEY_CACHE_STRLEN]; /* credential-scope service */
    unsigned char key[32];          /* kSigning */
};

static struct key_slot key_cache[KEY_CACHE_SLOTS];
static unsigned long key_clock;
static pthread_mutex_t key_mutex = PTHREAD_MUTEX_INITIALIZER;

static int derive_key(const char *secret, const char *date, const char *region, const char *service,
                      unsigned char out[32])
{
    size_t slen = strlen(secret);
    unsigned char k1[32], k2[32];
    unsigned char *seed = malloc(slen + 4);
    int rc = -1;

    if (!seed)
        return -1;
    memcpy(seed, "AWS4", 4);
    memcpy(seed + 4, secret, slen);
    if (!hmac256(seed, slen + 4, date, strlen(date), k1) &&
        !hmac256(k1, 32, region, strlen(region), k2) &&
        !hmac256(k2, 32, service, strlen(service), k1) && !hmac256(k1, 32, "aws4_request", 12, out))
        rc = 0;
    OPENSSL_cleanse(seed, slen + 4);
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    free(seed);
    return rc;
}

static int slot_matches(const struct key_slot *s, const unsigned char hash[32], const char *date,
                        const char *region, const char *service)
{
    return s->used && CRYPTO_memcmp(s->secret_hash, hash, 32) == 0 && strcmp(s->date, date) == 0 &&
           strcmp(s->region, region) == 0 && strcmp(s->service, service) == 0;
}

int sigv4_signing_key(const char *secret, const char *datestamp, const char *region,
                      const char *service, unsigned char key_out[32])
{
    unsigned char hash[32];
    unsigned int hlen = 0;
    int cacheable, rc = -1;
    struct key_slot *victim;

    if (!secret || !datestamp || !region || !service || strlen(datestamp) != 8)
        return -1;
    cacheable = strlen(region) < KEY_CACHE_STRLEN && strlen(service) < KEY_CACHE_STRLEN;
    if (!EVP_Digest(secret, strlen(secret), hash, &hlen, EVP_sha256(), NULL) || hlen != 32)
        return -1;
    if (cacheable) {
        pthread_mutex_lock(&key_mutex);
        for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
            if (slot_matches(&key_cache[i], hash, datestamp, region, service)) {
                key_cache[i].stamp = ++key_clock;
                memcpy(key_out, key_cache[i].key, 32);
                rc = 1;
                break;
            }
        }
        pthread_mutex_unlock(&key_mutex);
        if (rc == 1)
            goto out;
    }
    if (derive_key(secret, datestamp, region, service, key_out))
        goto out;
    rc = 0;
    if (!cacheable)
        goto out;
    pthread_mutex_lock(&key_mutex);
    victim = &key_cache[0];
    for (size_t i = 0; i < KEY_CACHE_SLOTS; i++) {
        if (slot_matches(&key_cache[i], hash, datestamp, region, service)) {
            victim = &key_cache[i]; /* another thread derived it meanwhile */
            break;
        }
        if (!key_cache[i].used || key_cache[i].stamp < victim->stamp)
            victim = &key_cache[i];
        if (!victim->used)
            break;
    }
    OPENSSL_cleanse(victim, sizeof(*victim));
    victim->used = 1;
    victim->stamp = ++key_clock;
    memcpy(victim->secret_hash, hash, 32);
    memcpy(victim->date, datestamp, 9);
    memcpy(victim->region, region, strlen(region) + 1);
    memcpy(victim->service, service, strlen(service) + 1);
    memcpy(victim->key, key_out, 32);
    pthread_mutex_unlock(&key_mutex);
out:
    OPENSSL_cleanse(hash, sizeof(hash));
    return rc;
}

void sigv4_cache_clear(void)
{
    pthread_mutex_lock(&key_mutex);
    OPENSSL_cleanse(key_cache, sizeof(key_cache));
    key_clock = 0;
    pthread_mutex_unlock(&key_mutex);
}

/* ---- sigv4_sign ------------------------------------------------------------------------- */

void sigv4_result_free(struct sigv4_result *r)
{
    if (!r)
        return;
    free(r->authorization);
    free(r->canonical_request);
    free(r->string_to_sign);
    r->authorization = NULL;
    r->canonical_request = NULL;
    r->string_to_sign = NULL;
}

/* X-Amz-Date for `when` into out (17 bytes). Returns 0 or -1. */
static int format_amz_date(time_t when, char out[17])
{
    struct tm tm;

    if (!gmtime_r(&when, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return -1;
    return strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) == 16 ? 0 : -1;
}

static int valid_scope_part(const char *s)
{
    return s && *s && !strpbrk(s, "/\n\r");
}

int sigv4_sign(const struct sigv4_request *req, struct sigv4_result *out)
{
    struct buf creq, hdrs, signed_list, sts, authz;
    char datestamp[9], creq_hash[65];
    unsigned char key[32], sig[32];
    int rc = -1;

    memset(out, 0, sizeof(*out));
    buf_init(&creq, SIGV4_MAX_TEXT);
    buf_init(&hdrs, SIGV4_MAX_TEXT);
    buf_init(&signed_list, SIGV4_MAX_TEXT);
    buf_init(&sts, SIGV4_MAX_TEXT);
    buf_init(&authz, SIGV4_MAX_TEXT);
    memset(key, 0, sizeof(key));

    if (!req || !req->method || !req->method[0] || strpbrk(req->method, " \r\n") ||
        !req->access_key || !req->access_key[0] || !req->secret_key ||
        !valid_scope_part(req->region) || !valid_scope_part(req->service) ||
        (req->n_headers && !req->headers))
        goto out;
    if (format_amz_date(req->when, out->amz_date))
        goto out;
    memcpy(datestamp, out->amz_date, 8);
    datestamp[8] = '\0';

    if (req->payload_hash) {
        size_t hl = strlen(req->payload_hash);
        if (hl == 0 || hl > 64 || strpbrk(req->payload_hash, "\r\n"))
            goto out;
        memcpy(out->payload_hash, req->payload_hash, hl + 1);
    } else {
        if (!req->payload && req->payload_len)
            goto out;
        sigv4_sha256_hex(req->payload, req->payload_len, out->payload_hash);
        if (!out->payload_hash[0])
            goto out;
    }

    /* Canonical request: method, URI, query, headers, signed headers, payload hash. */
    if (canonical_headers(req, out->amz_date, out->payload_hash, &hdrs, &signed_list))
        goto out;
    buf_puts(&creq, req->method);
    buf_putc(&creq, '\n');
    canonical_uri(&creq, req);
    buf_putc(&creq, '\n');
    canonical_query(&creq, req->query);
    buf_putc(&creq, '\n');
    buf_append(&creq, hdrs.data, hdrs.len);
    buf_putc(&creq, '\n');
    buf_append(&creq, signed_list.data, signed_list.len);
    buf_putc(&creq, '\n');
    if (buf_puts(&creq, out->payload_hash))
        goto out;

    /* String to sign. */
    sigv4_sha256_hex(creq.data, creq.len, creq_hash);
    if (!creq_hash[0])
        goto out;
    if (buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date,
                   datestamp, req->region, req->service, creq_hash))
        goto out;

    /* Signature and Authorization. */
    if (sigv4_signing_key(req->secret_key, datestamp, req->region, req->service, key) < 0)
        goto out;
    if (hmac256(key, sizeof(key), sts.data, sts.len, sig))
        goto out;
    hex_encode(sig, sizeof(sig), out->signature);
    if (buf_printf(&authz,
                   SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                                   "Signature=%s",
                   req->access_key, datestamp, req->region, req->service, signed_list.data,
                   out->signature))
        goto out;

    out->canonical_request = buf_steal(&creq, NULL);
    out->string_to_sign = buf_steal(&sts, NULL);
    out->authorization = buf_steal(&authz, NULL);
    if (!out->canonical_request || !out->string_to_sign || !out->authorization)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof(key));
    buf_free(&creq);
    buf_free(&hdrs);
    buf_free(&signed_list);
    buf_free(&sts);
    buf_free(&authz);
    if (rc) {
        sigv4_result_free(out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}
