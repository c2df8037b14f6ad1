/*
 * objstore: where the `local` engine reads source objects from.
 *
 * An object store is a small const vtable (struct objstore_ops: open/read/close/stat/list, and
 * the optional stream) so an S3-backed store (server/objstore_s3.c) sits next to the folder
 * store. The folder
 * store maps `s3://bucket/key` to `<root>/<bucket>/<key>` and never reads anything outside
 * <root>: every path component is opened with openat(O_NOFOLLOW), so symlinks (inside or
 * pointing out of the folder), `..` segments and absolute keys cannot escape it.
 *
 * Plain file paths (`hcpipe run --source FILE`) are opened with objstore_file_open(), which
 * returns the same kind of reader.
 *
 * Every function returns an hc_err (server/error.h): HC_EBADSOURCE for an invalid URI, bucket
 * or key, HC_ESOURCEMISSING when the object does not exist (or is not a regular file), HC_EIO
 * for a read error, HC_ENOMEM.
 */
#ifndef HCPIPE_OBJSTORE_H
#define HCPIPE_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#define OBJSTORE_KEY_MAX 1024

/* What identifies one version of an object. */
struct objstore_info {
    uint64_t size;    /* bytes */
    char version[80]; /* ETag, or the mtime as "<seconds>.<nanoseconds>" for files */
};

struct objstore;
struct objstore_reader;

/* Called by objstore_list() for each object; return non-zero to stop (returned by list). */
typedef int (*objstore_list_cb)(void *ctx, const char *key, const struct objstore_info *info);

struct objstore_ops {
    const char *name; /* "folder", later "s3" */
    /* Opens an object for reading; *info_out describes the version being read. */
    int (*open)(struct objstore *s, const char *bucket, const char *key,
                struct objstore_reader **out, struct objstore_info *info_out);
    /* Reads up to cap bytes; *n_out = 0 at the end of the object. */
    int (*read)(struct objstore_reader *r, void *buf, size_t cap, size_t *n_out);
    /* Closes a reader (NULL is a no-op). */
    void (*close)(struct objstore_reader *r);
    /* Size and version of an object without reading it. */
    int (*stat)(struct objstore *s, const char *bucket, const char *key,
                struct objstore_info *info_out);
    /* Calls cb for every object of `bucket` whose key starts with `prefix` (may be ""). */
    int (*list)(struct objstore *s, const char *bucket, const char *prefix, objstore_list_cb cb,
                void *ctx);
    /* Frees the store. */
    void (*destroy)(struct objstore *s);
    /* Optional (NULL for the folder store): pushes the bytes of the object version `expect`
     * (from stat()) to on_data as they arrive, without a reader; a store that streams from the
     * network (S3) has it, and callers prefer it to open/read. The object changing meanwhile is
     * HC_EIO. on_data returns 0 to go on, or an hc_err that stops and is returned. */
    int (*stream)(struct objstore *s, const char *bucket, const char *key,
                  const struct objstore_info *expect,
                  int (*on_data)(void *ctx, const void *data, size_t len), void *ctx);
};

struct objstore {
    const struct objstore_ops *ops; /* first member */
};

/* Every reader starts with its ops, so objstore_read()/objstore_close() can dispatch. */
struct objstore_reader {
    const struct objstore_ops *ops;
};

/* The folder store rooted at `root` (e.g. <data-dir>/buckets; need not exist yet). Caller frees
 * with objstore_destroy(). */
int objstore_folder_new(const char *root, struct objstore **out);

/* Convenience dispatchers over the vtable. */
int objstore_open(struct objstore *s, const char *bucket, const char *key,
                  struct objstore_reader **out, struct objstore_info *info_out);
int objstore_stat(struct objstore *s, const char *bucket, const char *key,
                  struct objstore_info *info_out);
int objstore_list(struct objstore *s, const char *bucket, const char *prefix, objstore_list_cb cb,
                  void *ctx);
int objstore_read(struct objstore_reader *r, void *buf, size_t cap, size_t *n_out);
void objstore_close(struct objstore_reader *r);

/* The store's stream() when it has one; otherwise open() and read() in 1 MiB chunks, failing
 * with HC_EIO when `expect` (optional) names another version than the one opened. */
int objstore_stream(struct objstore *s, const char *bucket, const char *key,
                    const struct objstore_info *expect,
                    int (*on_data)(void *ctx, const void *data, size_t len), void *ctx);
void objstore_destroy(struct objstore *s);

/* Opens a plain file (a regular file; symlinks to regular files are followed). */
int objstore_file_open(const char *path, struct objstore_reader **out,
                       struct objstore_info *info_out);

/* Splits "s3://bucket/key" into malloc'ed *bucket_out and *key_out (caller frees both) after
 * validating both. HC_EBADSOURCE when malformed. */
int objstore_parse_uri(const char *uri, char **bucket_out, char **key_out);

/* 1 when `bucket` follows the S3 bucket naming rules (3-63 characters of a-z 0-9 . -, starting
 * and ending with a letter or digit, no "..", not an IP address, no reserved prefix/suffix). */
int objstore_bucket_valid(const char *bucket);

/* 1 when the `len` bytes are an acceptable key: 1..1024 bytes of valid UTF-8 without NUL, no
 * leading '/', and no empty, "." or ".." segment. */
int objstore_key_valid(const char *key, size_t len);

#endif
