/*
 * objstore_s3: the S3 object store of the `local` engine (HCPIPE_SOURCE=s3): objects are read
 * from S3 or any S3-compatible endpoint (AWS_ENDPOINT_URL_S3, e.g. MinIO, Ceph, s3rver) with
 * aws/s3.h, and the version of an object is its ETag.
 *
 * stat() is HeadObject; stream() is GetObject with If-Match on the ETag stat() saw, its bytes
 * pushed to the caller (the parser) as they arrive; open()/read() (for callers that pull) spool
 * the object into an unlinked temporary file first; list() is ListObjectsV2 over a prefix.
 * Errors: a missing bucket or key is HC_ESOURCEMISSING, AccessDenied/signature errors
 * HC_EFORBIDDEN, an object that changed during a read, network errors and 5xx HC_EIO (the job
 * is retried). The S3 error code and message are logged.
 */
#ifndef HCPIPE_OBJSTORE_S3_H
#define HCPIPE_OBJSTORE_S3_H

#include "server/objstore.h"

/* A new S3 store with its own client (region, credentials and endpoint as the AWS SDKs).
 * Caller frees with objstore_destroy(). Returns HC_OK, or HC_ENOMEM. */
int objstore_s3_new(struct objstore **out);

/* Uploads the file at `path` to s3://bucket/key with `content_type` through the store's client
 * (used to publish results). Returns HC_OK, HC_EFORBIDDEN, HC_ESOURCEMISSING (no bucket) or
 * HC_EIO. */
int objstore_s3_put_file(struct objstore *s, const char *bucket, const char *key, const char *path,
                         const char *content_type);

#endif
