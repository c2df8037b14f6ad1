/*
 * fuzz_sigv4.c: libFuzzer target for aws/sigv4.c canonicalisation and signing.
 *
 * Built and run by `make fuzz` (see the Makefile).
 *
 * Input layout: byte 0 holds flags (bit 0: service "s3" instead of "service"; bits 1-2: path
 * mode; bit 3: sign x-amz-content-sha256; bit 4: session token; bit 5: omit the token from the
 * signature; bit 6: UNSIGNED-PAYLOAD instead of hashing the body; bit 7: the next 8 bytes are the
 * signing time, else 2015-08-30T12:36:00Z). The rest is text: a method line, a path line, a
 * query line, "Name:value" header lines (a line starting with a space or tab continues the
 * previous one) up to an empty line, then the body. A NUL byte ends a
 * field early, as it would for any C caller.
 *
 * Besides "never crash", the target checks the result's invariants: a successful signature has
 * all three texts, a 64-digit lowercase hex signature inside the Authorization value, and a
 * canonical request that ends in the payload hash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"

#define MAX_HEADERS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Cuts the next '\n'-terminated line off *p (in place); returns it, or NULL at the end. */
static char *next_line(char **p, char *end)
{
    char *line = *p, *nl;

    if (line >= end)
        return NULL;
    nl = memchr(line, '\n', (size_t)(end - line));
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = end;
    }
    return line;
}

static void check_result(const struct sigv4_result *r)
{
    size_t clen, hlen;

    if (!r->authorization || !r->canonical_request || !r->string_to_sign)
        abort();
    if (strlen(r->signature) != 64 || strspn(r->signature, "0123456789abcdef") != 64)
        abort();
    if (!strstr(r->authorization, r->signature))
        abort();
    clen = strlen(r->canonical_request);
    hlen = strlen(r->payload_hash);
    if (hlen == 0 || clen < hlen || strcmp(r->canonical_request + clen - hlen, r->payload_hash))
        abort();
    if (strlen(r->amz_date) != 16)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sigv4_header headers[MAX_HEADERS];
    struct sigv4_request req;
    struct sigv4_result res;
    char *text, *p, *end, *line;
    uint8_t flags;
    unsigned mode;
    size_t n = 0;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    memset(&req, 0, sizeof(req));
    req.when = (time_t)1440938160;
    if (flags & 0x80) {
        int64_t t = 0;
        if (size < 8)
            return 0;
        memcpy(&t, data, 8);
        req.when = (time_t)t;
        data += 8;
        size -= 8;
    }
    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    p = text;
    end = text + size;

    req.method = next_line(&p, end);
    req.path = next_line(&p, end);
    req.query = next_line(&p, end);
    while (n < MAX_HEADERS) {
        char *colon;

        line = next_line(&p, end);
        if (!line || !*line)
            break;
        if ((line[0] == ' ' || line[0] == '\t') && n > 0) {
            line[-1] = '\n'; /* a continuation line: rejoin it to the previous value */
            continue;
        }
        colon = strchr(line, ':');
        if (colon)
            *colon = '\0';
        headers[n].name = line;
        headers[n].value = colon ? colon + 1 : "";
        n++;
    }
    req.headers = headers;
    req.n_headers = n;
    req.payload = p;
    req.payload_len = (size_t)(end - p);
    req.region = "us-east-1";
    req.service = (flags & 1) ? "s3" : "service";
    mode = (flags >> 1) & 3u;
    req.path_mode = mode == 3 ? SIGV4_PATH_AUTO : (enum sigv4_path_mode)mode;
    req.sign_content_sha256 = (flags >> 3) & 1;
    req.session_token = (flags & 0x10) ? "AQoDYXdzEPT//////////wEXAMPLE==" : NULL;
    req.omit_session_token = (flags >> 5) & 1;
    req.payload_hash = (flags & 0x40) ? SIGV4_UNSIGNED_PAYLOAD : NULL;
    req.access_key = "AKIDEXAMPLE";
    req.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    if (sigv4_sign(&req, &res) == 0) {
        check_result(&res);
        sigv4_result_free(&res);
    }
    free(text);
    return 0;
}
