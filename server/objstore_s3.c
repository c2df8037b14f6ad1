/*
 * objstore_s3.c: the S3 object store (contracts in objstore_s3.h).
 *
 * Organisation: error mapping; stat (HeadObject); stream (GetObject with If-Match, pushing
 * bytes to the caller); the spooling reader (open/read/close over an unlinked temporary file);
 * list (ListObjectsV2); put_file (PutObject, for publishing results); the vtable.
 */
#include "server/objstore_s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/s3.h"
#include "server/error.h"
#include "server/log.h"

struct s3_store {
    struct objstore base; /* first member */
    struct aws_credentials_provider *creds;
    struct aws_client *client;
};

static const struct objstore_ops s3_ops;

/* Maps an S3 failure to an hc_err and logs it. */
static int s3_err(const char *what, const char *bucket, const char *key, const struct s3_error *e)
{
    char status[16];

    snprintf(status, sizeof status, "%ld", e->status);
    log_warn("s3 request failed", "op", what, "bucket", bucket, "key", key ? key : "", "status",
             status, "code", e->code, "message", e->message, NULL);
    if (strcmp(e->code, "NoSuchKey") == 0 || strcmp(e->code, "NoSuchBucket") == 0 ||
        strcmp(e->code, "NotFound") == 0 || e->status == 404)
        return HC_ESOURCEMISSING;
    if (strcmp(e->code, "AccessDenied") == 0 || strstr(e->code, "Signature") ||
        strcmp(e->code, "InvalidAccessKeyId") == 0 || e->status == 403)
        return HC_EFORBIDDEN;
    if (strcmp(e->code, "InvalidArgument") == 0)
        return HC_EBADSOURCE;
    if (strcmp(e->code, "ClientError") == 0 && strstr(e->message, "memory"))
        return HC_ENOMEM;
    return HC_EIO;
}

static void info_from(const struct s3_object_info *oi, struct objstore_info *info)
{
    info->size = oi->size > 0 ? (uint64_t)oi->size : 0;
    snprintf(info->version, sizeof info->version, "%.79s", oi->etag);
}

static int s3store_stat(struct objstore *s, const char *bucket, const char *key,
                        struct objstore_info *info_out)
{
    struct s3_store *ss = (struct s3_store *)s;
    struct s3_object_info oi;
    struct s3_error e;

    if (s3_head_object(ss->client, bucket, key, &oi, &e) != 0)
        return s3_err("HeadObject", bucket, key, &e);
    info_from(&oi, info_out);
    return HC_OK;
}

struct push {
    int (*on_data)(void *ctx, const void *data, size_t len);
    void *ctx;
    int err; /* the caller's error that stopped the transfer */
};

static int push_data(void *ctx, const void *data, size_t len)
{
    struct push *p = ctx;

    p->err = p->on_data(p->ctx, data, len);
    return p->err ? 1 : 0;
}

static int s3store_stream(struct objstore *s, const char *bucket, const char *key,
                          const struct objstore_info *expect,
                          int (*on_data)(void *ctx, const void *data, size_t len), void *ctx)
{
    struct s3_store *ss = (struct s3_store *)s;
    struct s3_get_options opt = {0};
    struct push p = {on_data, ctx, HC_OK};
    struct s3_error e;

    if (expect && expect->version[0])
        opt.if_match = expect->version;
    if (s3_get_object(ss->client, bucket, key, &opt, push_data, &p, NULL, &e) != 0) {
        if (p.err)
            return p.err;
        if (e.status == 412)
            log_warn("s3: the object changed while it was read; the job retries", "bucket", bucket,
                     "key", key, NULL);
        return e.status == 412 ? HC_EIO : s3_err("GetObject", bucket, key, &e);
    }
    return HC_OK;
}

/* ---- the spooling reader ---- */

struct spool_reader {
    struct objstore_reader base; /* first member */
    FILE *f;
};

static int spool_write(void *ctx, const void *data, size_t len)
{
    return fwrite(data, 1, len, (FILE *)ctx) == len ? HC_OK : HC_EIO;
}

static int s3store_open(struct objstore *s, const char *bucket, const char *key,
                        struct objstore_reader **out, struct objstore_info *info_out)
{
    struct spool_reader *r = NULL;
    struct objstore_info info;
    int err;

    *out = NULL;
    err = s3store_stat(s, bucket, key, &info);
    if (err)
        return err;
    r = calloc(1, sizeof *r);
    if (!r)
        return HC_ENOMEM;
    r->base.ops = &s3_ops;
    r->f = tmpfile();
    if (!r->f) {
        free(r);
        return HC_EIO;
    }
    err = s3store_stream(s, bucket, key, &info, spool_write, r->f);
    if (!err && (fflush(r->f) != 0 || fseek(r->f, 0, SEEK_SET) != 0))
        err = HC_EIO;
    if (err) {
        fclose(r->f);
        free(r);
        return err;
    }
    if (info_out)
        *info_out = info;
    *out = &r->base;
    return HC_OK;
}

static int spool_read(struct objstore_reader *rd, void *buf, size_t cap, size_t *n_out)
{
    struct spool_reader *r = (struct spool_reader *)rd;

    *n_out = fread(buf, 1, cap, r->f);
    return ferror(r->f) ? HC_EIO : HC_OK;
}

static void spool_close(struct objstore_reader *rd)
{
    struct spool_reader *r = (struct spool_reader *)rd;

    if (!r)
        return;
    fclose(r->f);
    free(r);
}

/* ---- listing ---- */

struct list_ctx {
    objstore_list_cb cb;
    void *ctx;
    int stopped; /* the callback's non-zero return */
};

static int list_entry(void *ctx, const struct s3_entry *e)
{
    struct list_ctx *lc = ctx;
    struct objstore_info info = {0};

    if (!e->key || !*e->key || e->key[strlen(e->key) - 1] == '/')
        return 0; /* "folder" placeholder objects */
    info.size = e->size > 0 ? (uint64_t)e->size : 0;
    snprintf(info.version, sizeof info.version, "%s", e->etag ? e->etag : "");
    lc->stopped = lc->cb(lc->ctx, e->key, &info);
    return lc->stopped;
}

static int s3store_list(struct objstore *s, const char *bucket, const char *prefix,
                        objstore_list_cb cb, void *ctx)
{
    struct s3_store *ss = (struct s3_store *)s;
    struct s3_list_options opt = {.prefix = prefix && *prefix ? prefix : NULL};
    struct list_ctx lc = {cb, ctx, 0};
    struct s3_error e;

    if (s3_list_objects(ss->client, bucket, &opt, list_entry, &lc, &e) != 0)
        return s3_err("ListObjectsV2", bucket, prefix, &e);
    return lc.stopped;
}

int objstore_s3_put_file(struct objstore *s, const char *bucket, const char *key, const char *path,
                         const char *content_type)
{
    struct s3_store *ss = (struct s3_store *)s;
    struct s3_error e;

    if (s->ops != &s3_ops)
        return HC_EINVAL;
    if (s3_put_object_file(ss->client, bucket, key, path, content_type, NULL, &e) != 0)
        return s3_err("PutObject", bucket, key, &e);
    return HC_OK;
}

static void s3store_destroy(struct objstore *s)
{
    struct s3_store *ss = (struct s3_store *)s;

    if (!ss)
        return;
    aws_client_free(ss->client);
    aws_credentials_provider_free(ss->creds);
    free(ss);
}

static const struct objstore_ops s3_ops = {
    .name = "s3",
    .open = s3store_open,
    .read = spool_read,
    .close = spool_close,
    .stat = s3store_stat,
    .list = s3store_list,
    .destroy = s3store_destroy,
    .stream = s3store_stream,
};

int objstore_s3_new(struct objstore **out)
{
    struct s3_store *ss = calloc(1, sizeof *ss);
    struct aws_client_config cc = {0};

    *out = NULL;
    if (!ss)
        return HC_ENOMEM;
    ss->base.ops = &s3_ops;
    ss->creds = aws_credentials_provider_new();
    cc.credentials = ss->creds;
    ss->client = ss->creds ? aws_client_new(&cc) : NULL;
    if (!ss->client) {
        s3store_destroy(&ss->base);
        return HC_ENOMEM;
    }
    *out = &ss->base;
    return HC_OK;
}
