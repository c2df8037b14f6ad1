/*
 * objstore.c: the object-store vtable dispatchers, name validation, and the folder store.
 *
 * Organisation: validation of bucket names and keys; URI parsing; the fd-based reader shared by
 * the folder store and plain files; the folder store (open/stat walk the path one component at
 * a time with openat(O_NOFOLLOW), list walks the bucket folder recursively); the dispatchers.
 */
#include "server/objstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/buf.h"
#include "server/error.h"

/* ---- validation ---- */

static int is_lower_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int looks_like_ip(const char *b)
{
    int dots = 0;

    for (const char *p = b; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p < '0' || *p > '9')
            return 0;
    }
    return dots == 3;
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int objstore_bucket_valid(const char *b)
{
    size_t n = b ? strlen(b) : 0;

    if (n < 3 || n > 63 || !is_lower_digit(b[0]) || !is_lower_digit(b[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_digit(b[i]) && b[i] != '.' && b[i] != '-')
            return 0;
        if (b[i] == '.' && b[i + 1] == '.')
            return 0;
    }
    if (looks_like_ip(b) || strncmp(b, "xn--", 4) == 0 || strncmp(b, "sthree-", 7) == 0 ||
        has_suffix(b, "-s3alias") || has_suffix(b, "--ol-s3"))
        return 0;
    return 1;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int objstore_key_valid(const char *key, size_t len)
{
    const unsigned char *s = (const unsigned char *)key;
    size_t seg = 0; /* start of the current segment */

    if (!key || len == 0 || len > OBJSTORE_KEY_MAX || key[0] == '/')
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            size_t sl = i - seg;

            if (sl == 0 || (sl == 1 && s[seg] == '.') ||
                (sl == 2 && s[seg] == '.' && s[seg + 1] == '.'))
                return 0;
            seg = i + 1;
            continue;
        }
        if (s[i] == 0)
            return 0;
        size_t l = utf8_seq(s + i, len - i);
        if (l == 0)
            return 0;
        i += l - 1;
    }
    return 1;
}

int objstore_parse_uri(const char *uri, char **bucket_out, char **key_out)
{
    const char *b, *slash;
    char *bucket = NULL, *key = NULL;

    *bucket_out = NULL;
    *key_out = NULL;
    if (!uri || strncmp(uri, "s3://", 5) != 0)
        return HC_EBADSOURCE;
    b = uri + 5;
    slash = strchr(b, '/');
    if (!slash)
        return HC_EBADSOURCE;
    bucket = strndup(b, (size_t)(slash - b));
    key = strdup(slash + 1);
    if (!bucket || !key) {
        free(bucket);
        free(key);
        return HC_ENOMEM;
    }
    if (!objstore_bucket_valid(bucket) || !objstore_key_valid(key, strlen(key))) {
        free(bucket);
        free(key);
        return HC_EBADSOURCE;
    }
    *bucket_out = bucket;
    *key_out = key;
    return HC_OK;
}

/* ---- the fd reader (folder objects and plain files) ---- */

struct fd_reader {
    struct objstore_reader base; /* first member */
    int fd;
};

static int fd_read(struct objstore_reader *r, void *buf, size_t cap, size_t *n_out)
{
    struct fd_reader *fr = (struct fd_reader *)r;
    ssize_t n;

    do {
        n = read(fr->fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        *n_out = 0;
        return HC_EIO;
    }
    *n_out = (size_t)n;
    return HC_OK;
}

static void fd_close(struct objstore_reader *r)
{
    struct fd_reader *fr = (struct fd_reader *)r;

    if (!fr)
        return;
    close(fr->fd);
    free(fr);
}

static void info_from_stat(const struct stat *st, struct objstore_info *info)
{
    info->size = (uint64_t)st->st_size;
    snprintf(info->version, sizeof info->version, "%lld.%09ld", (long long)st->st_mtim.tv_sec,
             (long)st->st_mtim.tv_nsec);
}

static int errno_to_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP: /* a symlink where a component must be a real folder or file */
    case EISDIR:
        return HC_ESOURCEMISSING;
    case ENOMEM:
        return HC_ENOMEM;
    case EACCES:
    case EPERM:
        return HC_EBADSOURCE;
    default:
        return HC_EIO;
    }
}

/* Wraps an open fd into a reader after checking it is a regular file. Closes fd on error. */
static int reader_from_fd(const struct objstore_ops *ops, int fd, struct objstore_reader **out,
                          struct objstore_info *info)
{
    struct stat st;
    struct fd_reader *r;

    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return errno_to_err(e);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return HC_ESOURCEMISSING;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        return HC_ENOMEM;
    }
    r->base.ops = ops;
    r->fd = fd;
    if (info)
        info_from_stat(&st, info);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *out = &r->base;
    return HC_OK;
}

/* ---- the folder store ---- */

struct folder_store {
    struct objstore base; /* first member */
    char *root;
};

static const struct objstore_ops folder_ops;

/* Opens <root>/<bucket>/<key> without following any symlink. Returns an fd or -errno-mapped
 * hc_err through *err. `dir_only` opens the last component as a directory. */
static int folder_openat(struct folder_store *fs, const char *bucket, const char *key, int dir_only,
                         int *fd_out)
{
    int dirfd = -1, fd = -1, rc = HC_OK;
    char *path = NULL, *seg, *next;

    *fd_out = -1;
    if (!objstore_bucket_valid(bucket))
        return HC_EBADSOURCE;
    if (key && !objstore_key_valid(key, strlen(key)))
        return HC_EBADSOURCE;
    dirfd = open(fs->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return errno_to_err(errno);
    fd = openat(dirfd, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = errno_to_err(errno);
        goto out;
    }
    close(dirfd);
    dirfd = fd;
    fd = -1;
    if (!key) {
        *fd_out = dirfd;
        dirfd = -1;
        goto out;
    }
    path = strdup(key);
    if (!path) {
        rc = HC_ENOMEM;
        goto out;
    }
    for (seg = path; seg; seg = next) {
        next = strchr(seg, '/');
        if (next)
            *next++ = '\0';
        int last = next == NULL;
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC;
        if (!last || dir_only)
            flags |= O_DIRECTORY;
        else
            flags |= O_NONBLOCK; /* a FIFO must not block us; checked to be regular below */
        fd = openat(dirfd, seg, flags);
        if (fd < 0) {
            rc = errno_to_err(errno);
            goto out;
        }
        close(dirfd);
        dirfd = fd;
        fd = -1;
    }
    if (!dir_only) {
        int fl = fcntl(dirfd, F_GETFL);
        if (fl >= 0)
            fcntl(dirfd, F_SETFL, fl & ~O_NONBLOCK);
    }
    *fd_out = dirfd;
    dirfd = -1;
out:
    if (dirfd >= 0)
        close(dirfd);
    free(path);
    return rc;
}

static int folder_open(struct objstore *s, const char *bucket, const char *key,
                       struct objstore_reader **out, struct objstore_info *info)
{
    int fd, rc;

    *out = NULL;
    rc = folder_openat((struct folder_store *)s, bucket, key, 0, &fd);
    if (rc)
        return rc;
    return reader_from_fd(&folder_ops, fd, out, info);
}

static int folder_stat(struct objstore *s, const char *bucket, const char *key,
                       struct objstore_info *info)
{
    struct objstore_reader *r = NULL;
    int rc = folder_open(s, bucket, key, &r, info);

    fd_close(r);
    return rc;
}

/* Recursive listing below dirfd; `rel` holds the key prefix of this folder. */
static int list_dir(int dirfd, struct buf *rel, const char *prefix, objstore_list_cb cb, void *ctx,
                    int depth)
{
    DIR *d;
    struct dirent *de;
    int rc = HC_OK;

    if (depth > 64) {
        close(dirfd);
        return HC_OK;
    }
    d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return HC_EIO;
    }
    while (rc == HC_OK && (de = readdir(d)) != NULL) {
        struct stat st;
        size_t keep = rel->len;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (buf_puts(rel, de->d_name) != 0)
            return closedir(d), HC_ENOMEM;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0 && buf_putc(rel, '/') == 0)
                rc = list_dir(sub, rel, prefix, cb, ctx, depth + 1);
            else if (sub >= 0)
                close(sub);
        } else if (S_ISREG(st.st_mode) && strncmp(rel->data, prefix, strlen(prefix)) == 0 &&
                   objstore_key_valid(rel->data, rel->len)) {
            struct objstore_info info;
            info_from_stat(&st, &info);
            rc = cb(ctx, rel->data, &info);
        }
        if (rel->failed)
            rc = HC_ENOMEM;
        rel->len = keep;
        if (rel->data)
            rel->data[keep] = '\0';
    }
    closedir(d);
    return rc;
}

static int folder_list(struct objstore *s, const char *bucket, const char *prefix,
                       objstore_list_cb cb, void *ctx)
{
    int fd, rc;
    struct buf rel;

    rc = folder_openat((struct folder_store *)s, bucket, NULL, 1, &fd);
    if (rc)
        return rc;
    buf_init(&rel, OBJSTORE_KEY_MAX * 4);
    buf_puts(&rel, "");
    rc = list_dir(fd, &rel, prefix ? prefix : "", cb, ctx, 0);
    buf_free(&rel);
    return rc;
}

static void folder_destroy(struct objstore *s)
{
    struct folder_store *fs = (struct folder_store *)s;

    if (!fs)
        return;
    free(fs->root);
    free(fs);
}

static const struct objstore_ops folder_ops = {
    .name = "folder",
    .open = folder_open,
    .read = fd_read,
    .close = fd_close,
    .stat = folder_stat,
    .list = folder_list,
    .destroy = folder_destroy,
};

int objstore_folder_new(const char *root, struct objstore **out)
{
    struct folder_store *fs = calloc(1, sizeof *fs);

    *out = NULL;
    if (!fs)
        return HC_ENOMEM;
    fs->root = strdup(root);
    if (!fs->root) {
        free(fs);
        return HC_ENOMEM;
    }
    fs->base.ops = &folder_ops;
    *out = &fs->base;
    return HC_OK;
}

/* ---- plain files ---- */

int objstore_file_open(const char *path, struct objstore_reader **out, struct objstore_info *info)
{
    int fd;

    *out = NULL;
    if (!path || !*path)
        return HC_EBADSOURCE;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno_to_err(errno);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return reader_from_fd(&folder_ops, fd, out, info);
}

/* ---- dispatchers ---- */

int objstore_open(struct objstore *s, const char *bucket, const char *key,
                  struct objstore_reader **out, struct objstore_info *info_out)
{
    return s->ops->open(s, bucket, key, out, info_out);
}

int objstore_stat(struct objstore *s, const char *bucket, const char *key,
                  struct objstore_info *info_out)
{
    return s->ops->stat(s, bucket, key, info_out);
}

int objstore_list(struct objstore *s, const char *bucket, const char *prefix, objstore_list_cb cb,
                  void *ctx)
{
    return s->ops->list(s, bucket, prefix, cb, ctx);
}

int objstore_read(struct objstore_reader *r, void *buf, size_t cap, size_t *n_out)
{
    return r->ops->read(r, buf, cap, n_out);
}

int objstore_stream(struct objstore *s, const char *bucket, const char *key,
                    const struct objstore_info *expect,
                    int (*on_data)(void *ctx, const void *data, size_t len), void *ctx)
{
    struct objstore_reader *r = NULL;
    struct objstore_info info;
    char *chunk;
    int err;

    if (s->ops->stream)
        return s->ops->stream(s, bucket, key, expect, on_data, ctx);
    err = s->ops->open(s, bucket, key, &r, &info);
    if (err)
        return err;
    if (expect && expect->version[0] && strcmp(expect->version, info.version) != 0) {
        objstore_close(r);
        return HC_EIO; /* changed since stat() */
    }
    chunk = malloc(1 << 20);
    if (!chunk) {
        objstore_close(r);
        return HC_ENOMEM;
    }
    for (;;) {
        size_t n = 0;

        err = objstore_read(r, chunk, 1 << 20, &n);
        if (err || n == 0)
            break;
        err = on_data(ctx, chunk, n);
        if (err)
            break;
    }
    free(chunk);
    objstore_close(r);
    return err;
}

void objstore_close(struct objstore_reader *r)
{
    if (r)
        r->ops->close(r);
}

void objstore_destroy(struct objstore *s)
{
    if (s)
        s->ops->destroy(s);
}
