/*
 * s3.c: the S3 REST client and its XML parsers.
 *
 * Organisation:
 *   1. Small helpers: key/query encoding, botocore-style decoding, URL building, copying
 *      response metadata.
 *   2. XML parsers on expat: one generic collector that records the text of the elements a
 *      caller asks for (a path of element names below the root), used for the ListObjectsV2
 *      result and for <Error> bodies. A DOCTYPE stops the parser (no entity games).
 *   3. The operations: one `call()` that builds the URL, sends the request through
 *      aws_request_perform() (which signs, retries and parses service errors), maps a failure
 *      into an s3_error and turns the response into the public shapes; then a thin function per
 *      operation that checks its arguments and sets the method, headers and body.
 */
#include "aws/s3.h"

#include <ctype.h>
#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_TEXT_MAX  (256 * 1024) /* cap on one element's text */
#define S3_XML_DEPTH 16           /* element nesting we track */

/* ---- 1. helpers ---------------------------------------------------------------------------- */

static void set_err(struct s3_error *err, long status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(struct s3_error *err, long status, const char *code, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return;
    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Appends s percent-encoded once (upper-case hex); '/' kept when keep_slash. */
static int put_encoded(struct buf *b, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && (is_unreserved(c) || (keep_slash && c == '/'))) {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
    return b->failed ? -1 : 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *s3_url_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t n = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
                   hexval((unsigned char)s[i + 2]) >= 0) {
            out[n++] =
                (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

char *s3_build_url(const char *endpoint, int path_style, const char *bucket, const char *key,
                   const char *query)
{
    struct buf b;
    const char *sep;

    if (!endpoint || !bucket || !*bucket)
        return NULL;
    sep = strstr(endpoint, "://");
    if (!sep)
        return NULL;
    buf_init(&b, 64 * 1024);
    /* Virtual-hosted needs a DNS label the wildcard certificate covers: [a-z0-9-] only. */
    if (bucket[strspn(bucket, "abcdefghijklmnopqrstuvwxyz0123456789-")] != '\0')
        path_style = 1;
    if (path_style) {
        buf_puts(&b, endpoint);
        buf_putc(&b, '/');
        put_encoded(&b, bucket, strlen(bucket), 0);
        if (key) {
            buf_putc(&b, '/');
            put_encoded(&b, key, strlen(key), 1);
        }
    } else {
        buf_append(&b, endpoint, (size_t)(sep - endpoint) + 3);
        put_encoded(&b, bucket, strlen(bucket), 0);
        buf_putc(&b, '.');
        buf_puts(&b, sep + 3);
        buf_putc(&b, '/');
        if (key)
            put_encoded(&b, key, strlen(key), 1);
    }
    if (query && *query) {
        buf_putc(&b, '?');
        buf_puts(&b, query);
    }
    return buf_steal(&b, NULL);
}

static char *object_url(struct aws_client *c, const char *bucket, const char *key,
                        const char *query)
{
    int path_style = 0;
    const char *endpoint = aws_client_endpoint(c, "s3", &path_style);

    return s3_build_url(endpoint, path_style, bucket, key, query);
}

static void copy_str(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src ? src : "");
}

static void fill_info(struct s3_object_info *info, const struct aws_response *resp)
{
    struct tm tm;
    const char *end;

    if (!info)
        return;
    memset(info, 0, sizeof(*info));
    info->size = resp->content_length;
    copy_str(info->etag, sizeof(info->etag), resp->etag);
    copy_str(info->last_modified, sizeof(info->last_modified), resp->last_modified);
    copy_str(info->content_range, sizeof(info->content_range), resp->content_range);
    copy_str(info->content_type, sizeof(info->content_type), resp->content_type);
    memset(&tm, 0, sizeof(tm));
    if (resp->last_modified) {
        end = strptime(resp->last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end)
            info->last_modified_t = timegm(&tm);
    }
}

/* Fills *err from a failed response: the code http.c parsed, else our own parse of the body,
 * else one derived from the status. */
static void fill_err(struct s3_error *err, const struct aws_response *resp)
{
    char code[64] = "", message[512] = "";

    if (!err)
        return;
    /* http.c names a bodiless error (HEAD) by its status ("404"); we use words. */
    if (resp->error_code && *resp->error_code &&
        strspn(resp->error_code, "0123456789") != strlen(resp->error_code)) {
        set_err(err, resp->status, resp->error_code, "%s",
                resp->error_message ? resp->error_message : "");
        return;
    }
    if (resp->body.len && s3_parse_error_xml(resp->body.data, resp->body.len, code, sizeof(code),
                                             message, sizeof(message)) == 0) {
        set_err(err, resp->status, code, "%s", message);
        return;
    }
    switch (resp->status) {
    case 0:
        set_err(err, 0, "NetworkError", "no response");
        break;
    case 403:
        set_err(err, 403, "Forbidden", "HTTP 403");
        break;
    case 404:
        set_err(err, 404, "NotFound", "HTTP 404");
        break;
    case 412:
        set_err(err, 412, "PreconditionFailed", "HTTP 412");
        break;
    default:
        set_err(err, resp->status, "", "HTTP %ld", resp->status);
        snprintf(err->code, sizeof(err->code), "HTTP%ld", resp->status);
        break;
    }
}

/* ---- 2. XML ---------------------------------------------------------------------------------- */

/* The generic collector: the parser keeps the stack of element names; at each end tag the
 * handler gets the path and the collected text of that element. */
struct xml_ctx {
    XML_Parser parser;
    const char *stack[S3_XML_DEPTH]; /* element names, borrowed from expat for the element */
    char *names[S3_XML_DEPTH];       /* owned copies (expat names die after the callback) */
    int depth;                       /* current depth; may exceed S3_XML_DEPTH (untracked) */
    struct buf text;                 /* text of the innermost element */
    int failed;                      /* 1: stop, err set */
    char err[160];
    /* called at each end tag of a tracked element */
    int (*on_end)(struct xml_ctx *x, const char *text, size_t len);
    void *user;
};

static void xml_fail(struct xml_ctx *x, const char *msg)
{
    if (!x->failed) {
        x->failed = 1;
        snprintf(x->err, sizeof(x->err), "%s", msg);
    }
    XML_StopParser(x->parser, XML_FALSE);
}

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xml_ctx *x = ud;

    (void)attrs;
    if (x->failed)
        return;
    if (x->depth < S3_XML_DEPTH) {
        x->names[x->depth] = strdup(name);
        if (!x->names[x->depth]) {
            xml_fail(x, "out of memory");
            return;
        }
    }
    x->depth++;
    buf_reset(&x->text); /* a failed text buffer stays failed: xml_end() then stops */
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
    struct xml_ctx *x = ud;

    (void)name;
    if (x->failed)
        return;
    if (x->text.failed) {
        xml_fail(x, "element text too long");
        return;
    }
    if (x->depth <= S3_XML_DEPTH && x->on_end &&
        x->on_end(x, x->text.data ? x->text.data : "", x->text.len) != 0) {
        xml_fail(x, "out of memory");
        return;
    }
    x->depth--;
    if (x->depth < S3_XML_DEPTH) {
        free(x->names[x->depth]);
        x->names[x->depth] = NULL;
    }
    buf_reset(&x->text);
}

static void XMLCALL xml_chars(void *ud, const XML_Char *s, int len)
{
    struct xml_ctx *x = ud;

    if (!x->failed && len > 0)
        buf_append(&x->text, s, (size_t)len);
}

static void XMLCALL xml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                const XML_Char *pubid, int has_internal)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal;
    xml_fail(ud, "DOCTYPE not allowed");
}

/* Name of the element at depth d (0 = root), or "" when untracked. */
static const char *xml_name(const struct xml_ctx *x, int d)
{
    if (d < 0 || d >= S3_XML_DEPTH || d >= x->depth || !x->names[d])
        return "";
    return x->names[d];
}

/* Strips a namespace prefix ("s3:Key" -> "Key"). */
static const char *local_name(const char *n)
{
    const char *colon = strrchr(n, ':');
    return colon ? colon + 1 : n;
}

static int xml_run(struct xml_ctx *x, const char *xml, size_t len, char *err, size_t errlen)
{
    int rc = -1;

    x->parser = XML_ParserCreate("UTF-8");
    if (!x->parser) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    buf_init(&x->text, S3_TEXT_MAX);
    XML_SetUserData(x->parser, x);
    XML_SetElementHandler(x->parser, xml_start, xml_end);
    XML_SetCharacterDataHandler(x->parser, xml_chars);
    XML_SetStartDoctypeDeclHandler(x->parser, xml_doctype);
    if (len > (size_t)0x7fffffff) {
        snprintf(err, errlen, "document too large");
        goto out;
    }
    if (XML_Parse(x->parser, xml, (int)len, XML_TRUE) != XML_STATUS_OK || x->failed) {
        if (x->failed)
            snprintf(err, errlen, "%s", x->err);
        else
            snprintf(err, errlen, "XML error at line %lu: %s",
                     (unsigned long)XML_GetCurrentLineNumber(x->parser),
                     XML_ErrorString(XML_GetErrorCode(x->parser)));
        goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < S3_XML_DEPTH; i++) {
        free(x->names[i]);
        x->names[i] = NULL;
    }
    buf_free(&x->text);
    XML_ParserFree(x->parser);
    x->parser = NULL;
    return rc;
}

/* ListObjectsV2 collection state. */
struct list_state {
    struct s3_list_page *page;
    int root_ok;         /* root is ListBucketResult */
    struct s3_entry cur; /* entry being collected (raw strings) */
    size_t cap_entries, cap_prefixes;
};

static char *dup_text(const char *text, size_t len)
{
    char *s = malloc(len + 1);

    if (s) {
        memcpy(s, text, len);
        s[len] = '\0';
    }
    return s;
}

static void entry_clear(struct s3_entry *e)
{
    free(e->key);
    free(e->etag);
    free(e->last_modified);
    memset(e, 0, sizeof(*e));
    e->size = -1;
}

/* Replaces *slot by a copy of text. */
static int set_text(char **slot, const char *text, size_t len)
{
    char *s = dup_text(text, len);

    if (!s)
        return -1;
    free(*slot);
    *slot = s;
    return 0;
}

static int list_on_end(struct xml_ctx *x, const char *text, size_t len)
{
    struct list_state *st = x->user;
    struct s3_list_page *p = st->page;
    int d = x->depth - 1; /* depth of the ending element */
    const char *name = local_name(xml_name(x, d));

    if (d == 0) {
        st->root_ok = strcmp(name, "ListBucketResult") == 0;
        return 0;
    }
    if (d == 1) {
        if (strcmp(name, "IsTruncated") == 0) {
            p->is_truncated = len == 4 && memcmp(text, "true", 4) == 0;
        } else if (strcmp(name, "NextContinuationToken") == 0) {
            return set_text(&p->next_continuation_token, text, len);
        } else if (strcmp(name, "EncodingType") == 0) {
            p->url_encoded = len == 3 && memcmp(text, "url", 3) == 0;
        } else if (strcmp(name, "Contents") == 0) {
            if (p->n_entries == st->cap_entries) {
                size_t ncap = st->cap_entries ? st->cap_entries * 2 : 16;
                struct s3_entry *ne = realloc(p->entries, ncap * sizeof(*ne));
                if (!ne)
                    return -1;
                p->entries = ne;
                st->cap_entries = ncap;
            }
            if (!st->cur.key && set_text(&st->cur.key, "", 0) != 0)
                return -1;
            if (!st->cur.etag && set_text(&st->cur.etag, "", 0) != 0)
                return -1;
            if (!st->cur.last_modified && set_text(&st->cur.last_modified, "", 0) != 0)
                return -1;
            p->entries[p->n_entries++] = st->cur;
            memset(&st->cur, 0, sizeof(st->cur));
            st->cur.size = -1;
        }
        return 0;
    }
    if (d == 2 && strcmp(local_name(xml_name(x, 1)), "Contents") == 0) {
        if (strcmp(name, "Key") == 0)
            return set_text(&st->cur.key, text, len);
        if (strcmp(name, "ETag") == 0)
            return set_text(&st->cur.etag, text, len);
        if (strcmp(name, "LastModified") == 0)
            return set_text(&st->cur.last_modified, text, len);
        if (strcmp(name, "Size") == 0) {
            char num[32];
            char *end;
            long long v;
            if (len == 0 || len >= sizeof(num))
                return 0;
            memcpy(num, text, len);
            num[len] = '\0';
            errno = 0;
            v = strtoll(num, &end, 10);
            if (errno == 0 && *end == '\0' && v >= 0)
                st->cur.size = v;
        }
        return 0;
    }
    if (d == 2 && strcmp(local_name(xml_name(x, 1)), "CommonPrefixes") == 0 &&
        strcmp(name, "Prefix") == 0) {
        if (p->n_common_prefixes == st->cap_prefixes) {
            size_t ncap = st->cap_prefixes ? st->cap_prefixes * 2 : 8;
            char **np = realloc(p->common_prefixes, ncap * sizeof(*np));
            if (!np)
                return -1;
            p->common_prefixes = np;
            st->cap_prefixes = ncap;
        }
        p->common_prefixes[p->n_common_prefixes] = dup_text(text, len);
        if (!p->common_prefixes[p->n_common_prefixes])
            return -1;
        p->n_common_prefixes++;
    }
    return 0;
}

/* Replaces *s by its botocore decoding. */
static int decode_in_place(char **s)
{
    char *d = s3_url_decode(*s, strlen(*s));

    if (!d)
        return -1;
    free(*s);
    *s = d;
    return 0;
}

void s3_list_page_free(struct s3_list_page *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_entries; i++)
        entry_clear(&p->entries[i]);
    free(p->entries);
    for (size_t i = 0; i < p->n_common_prefixes; i++)
        free(p->common_prefixes[i]);
    free(p->common_prefixes);
    free(p->next_continuation_token);
    memset(p, 0, sizeof(*p));
}

int s3_parse_list_xml(const char *xml, size_t len, struct s3_list_page *out, char *err,
                      size_t errlen)
{
    struct xml_ctx x;
    struct list_state st;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&x, 0, sizeof(x));
    memset(&st, 0, sizeof(st));
    st.page = out;
    st.cur.size = -1;
    x.on_end = list_on_end;
    x.user = &st;
    if (xml_run(&x, xml, len, err, errlen) != 0)
        goto out;
    if (!st.root_ok) {
        snprintf(err, errlen, "root element is not ListBucketResult");
        goto out;
    }
    if (out->url_encoded) {
        for (size_t i = 0; i < out->n_entries; i++)
            if (decode_in_place(&out->entries[i].key) != 0)
                goto nomem;
        for (size_t i = 0; i < out->n_common_prefixes; i++)
            if (decode_in_place(&out->common_prefixes[i]) != 0)
                goto nomem;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory");
out:
    entry_clear(&st.cur);
    if (rc != 0)
        s3_list_page_free(out);
    return rc;
}

struct error_state {
    char *code, *message;
    int root_ok;
};

static int error_on_end(struct xml_ctx *x, const char *text, size_t len)
{
    struct error_state *st = x->user;
    int d = x->depth - 1;
    const char *name = local_name(xml_name(x, d));

    if (d == 0)
        st->root_ok = strcmp(name, "Error") == 0;
    else if (d == 1 && strcmp(name, "Code") == 0)
        return set_text(&st->code, text, len);
    else if (d == 1 && strcmp(name, "Message") == 0)
        return set_text(&st->message, text, len);
    return 0;
}

int s3_parse_error_xml(const char *xml, size_t len, char *code, size_t codelen, char *message,
                       size_t messagelen)
{
    struct xml_ctx x;
    struct error_state st;
    char err[160];
    int rc = -1;

    if (codelen)
        code[0] = '\0';
    if (messagelen)
        message[0] = '\0';
    memset(&x, 0, sizeof(x));
    memset(&st, 0, sizeof(st));
    x.on_end = error_on_end;
    x.user = &st;
    if (xml_run(&x, xml, len, err, sizeof(err)) == 0 && st.root_ok && st.code && *st.code) {
        snprintf(code, codelen, "%s", st.code);
        snprintf(message, messagelen, "%s", st.message ? st.message : "");
        rc = 0;
    }
    free(st.code);
    free(st.message);
    return rc;
}

/* ---- 3. operations --------------------------------------------------------------------------- */

static int check_args(const char *bucket, const char *key, struct s3_error *err)
{
    if (!bucket || !*bucket || (key && !*key)) {
        set_err(err, 0, "InvalidArgument", "bucket and key must be non-empty");
        return -1;
    }
    return 0;
}

/* check_args() for an operation on one object: the key is required too. */
static int check_object(const char *bucket, const char *key, struct s3_error *err)
{
    if (check_args(bucket, key, err) != 0)
        return -1;
    if (!key) {
        set_err(err, 0, "InvalidArgument", "key is required");
        return -1;
    }
    return 0;
}

/* One S3 operation: sends req (method, headers, body and on_data set by the caller) to
 * bucket/key?query (key NULL: the bucket; query NULL: none) through aws_request_perform(), which
 * signs, retries and parses service errors. On success fills info_out (optional) from the
 * response headers and, when list_out is set, parses the body as a ListObjectsV2 page into it
 * (caller frees with s3_list_page_free()). Returns 0, or -1 with *err filled. */
static int call(struct aws_client *c, struct aws_request *req, const char *bucket, const char *key,
                const char *query, struct s3_object_info *info_out, struct s3_list_page *list_out,
                struct s3_error *err)
{
    struct aws_response resp;
    char *url = NULL, perr[200];
    int rc = -1;

    memset(&resp, 0, sizeof(resp));
    buf_init(&resp.body, 0);
    url = object_url(c, bucket, key, query);
    if (!url) {
        set_err(err, 0, "ClientError", "cannot build URL");
        goto out;
    }
    req->service = "s3";
    req->url = url;
    if (aws_request_perform(c, req, &resp) != 0) {
        fill_err(err, &resp);
        goto out;
    }
    fill_info(info_out, &resp);
    if (list_out && s3_parse_list_xml(resp.body.data ? resp.body.data : "", resp.body.len, list_out,
                                      perr, sizeof(perr)) != 0) {
        set_err(err, resp.status, "ClientError", "ListObjectsV2 response: %s", perr);
        goto out;
    }
    if (list_out && list_out->is_truncated && !list_out->next_continuation_token) {
        s3_list_page_free(list_out);
        set_err(err, resp.status, "ClientError", "truncated listing without a continuation token");
        goto out;
    }
    rc = 0;
out:
    req->url = NULL;
    aws_response_free(&resp);
    free(url);
    return rc;
}

/* on_data trampoline: remembers that the caller aborted. */
struct get_ctx {
    int (*on_data)(void *ctx, const void *data, size_t len);
    void *ctx;
    int aborted;
};

static int get_on_data(void *ud, const void *data, size_t len)
{
    struct get_ctx *g = ud;

    if (g->on_data(g->ctx, data, len) != 0) {
        g->aborted = 1;
        return 1;
    }
    return 0;
}

int s3_get_object(struct aws_client *c, const char *bucket, const char *key,
                  const struct s3_get_options *opt,
                  int (*on_data)(void *ctx, const void *data, size_t len), void *ctx,
                  struct s3_object_info *info_out, struct s3_error *err)
{
    struct aws_header headers[2];
    struct get_ctx g = {on_data, ctx, 0};
    struct aws_request req = {.method = "GET", .headers = headers};

    if (check_args(bucket, key, err) != 0)
        return -1;
    if (!key || !on_data) {
        set_err(err, 0, "InvalidArgument", "key and on_data are required");
        return -1;
    }
    if (opt && opt->range && *opt->range)
        headers[req.n_headers++] = (struct aws_header){"Range", opt->range};
    if (opt && opt->if_match && *opt->if_match)
        headers[req.n_headers++] = (struct aws_header){"If-Match", opt->if_match};
    req.on_data = get_on_data;
    req.on_data_ctx = &g;
    if (call(c, &req, bucket, key, NULL, info_out, NULL, err) != 0) {
        /* fill_err() gave err the response's status. */
        if (g.aborted && err)
            set_err(err, err->status, "ClientError", "aborted by the data callback");
        return -1;
    }
    return 0;
}

int s3_head_object(struct aws_client *c, const char *bucket, const char *key,
                   struct s3_object_info *info_out, struct s3_error *err)
{
    struct aws_request req = {.method = "HEAD"};

    if (check_object(bucket, key, err) != 0)
        return -1;
    return call(c, &req, bucket, key, NULL, info_out, NULL, err);
}

static int put_common(struct aws_client *c, const char *bucket, const char *key, const void *data,
                      size_t len, const char *path, const char *content_type,
                      struct s3_object_info *info_out, struct s3_error *err)
{
    struct aws_header headers[1] = {
        {"Content-Type", content_type ? content_type : "application/octet-stream"}};
    struct aws_request req = {.method = "PUT", .headers = headers, .n_headers = 1};

    if (check_object(bucket, key, err) != 0)
        return -1;
    if (path) {
        req.body_file = path;
    } else {
        /* A zero-length object still needs a non-NULL body so a Content-Length: 0 goes out. */
        req.body = data ? data : "";
        req.body_len = data ? len : 0;
    }
    if (call(c, &req, bucket, key, NULL, info_out, NULL, err) != 0)
        return -1;
    if (info_out)
        info_out->size = path ? -1 : (int64_t)len;
    return 0;
}

int s3_put_object(struct aws_client *c, const char *bucket, const char *key, const void *data,
                  size_t len, const char *content_type, struct s3_object_info *info_out,
                  struct s3_error *err)
{
    return put_common(c, bucket, key, data, len, NULL, content_type, info_out, err);
}

int s3_put_object_file(struct aws_client *c, const char *bucket, const char *key, const char *path,
                       const char *content_type, struct s3_object_info *info_out,
                       struct s3_error *err)
{
    if (!path || !*path) {
        set_err(err, 0, "InvalidArgument", "path is required");
        return -1;
    }
    return put_common(c, bucket, key, NULL, 0, path, content_type, info_out, err);
}

int s3_delete_object(struct aws_client *c, const char *bucket, const char *key,
                     struct s3_error *err)
{
    struct aws_request req = {.method = "DELETE"};

    if (check_object(bucket, key, err) != 0)
        return -1;
    return call(c, &req, bucket, key, NULL, NULL, NULL, err);
}

/* Appends "&name=value" (value encoded, '/' too); names are added in sorted order by the caller
 * so the query is already canonical. */
static void query_param(struct buf *q, const char *name, const char *value)
{
    if (q->len)
        buf_putc(q, '&');
    buf_puts(q, name);
    buf_putc(q, '=');
    put_encoded(q, value, strlen(value), 0);
}

int s3_list_objects_page(struct aws_client *c, const char *bucket,
                         const struct s3_list_options *opt, const char *continuation_token,
                         struct s3_list_page *page_out, struct s3_error *err)
{
    struct aws_request req = {.method = "GET"};
    struct buf q;
    char maxkeys[16];
    int rc = -1;

    memset(page_out, 0, sizeof(*page_out));
    buf_init(&q, 16 * 1024);
    if (check_args(bucket, NULL, err) != 0)
        goto out;
    if (opt && (opt->max_keys < 0 || opt->max_keys > 1000)) {
        set_err(err, 0, "InvalidArgument", "max_keys must be 0..1000");
        goto out;
    }
    /* Sorted by name: continuation-token delimiter encoding-type list-type max-keys prefix
     * start-after. */
    if (continuation_token && *continuation_token)
        query_param(&q, "continuation-token", continuation_token);
    if (opt && opt->delimiter && *opt->delimiter)
        query_param(&q, "delimiter", opt->delimiter);
    query_param(&q, "encoding-type", "url");
    query_param(&q, "list-type", "2");
    if (opt && opt->max_keys > 0) {
        snprintf(maxkeys, sizeof(maxkeys), "%d", opt->max_keys);
        query_param(&q, "max-keys", maxkeys);
    }
    if (opt && opt->prefix && *opt->prefix)
        query_param(&q, "prefix", opt->prefix);
    if (opt && opt->start_after && *opt->start_after)
        query_param(&q, "start-after", opt->start_after);
    if (q.failed) {
        set_err(err, 0, "InvalidArgument", "query too long");
        goto out;
    }
    rc = call(c, &req, bucket, NULL, q.data, NULL, page_out, err);
out:
    buf_free(&q);
    return rc;
}

int s3_list_objects(struct aws_client *c, const char *bucket, const struct s3_list_options *opt,
                    int (*on_entry)(void *ctx, const struct s3_entry *e), void *ctx,
                    struct s3_error *err)
{
    struct s3_list_page page;
    char *token = NULL;
    int rc = -1, stop = 0;

    memset(&page, 0, sizeof(page));
    do {
        if (s3_list_objects_page(c, bucket, opt, token, &page, err) != 0)
            goto out;
        for (size_t i = 0; i < page.n_entries && !stop; i++)
            stop = on_entry(ctx, &page.entries[i]) != 0;
        free(token);
        token = page.is_truncated ? page.next_continuation_token : NULL;
        page.next_continuation_token = NULL;
        s3_list_page_free(&page);
    } while (token && !stop);
    rc = 0;
out:
    free(token);
    s3_list_page_free(&page);
    return rc;
}
