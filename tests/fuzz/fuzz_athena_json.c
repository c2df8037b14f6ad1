/*
 * fuzz_athena_json.c: libFuzzer target for the Athena response parsers of aws/athena.c.
 *
 * Built and run by `make fuzz` (linked with every library object).
 *
 * Byte 0 selects the parser (0 GetQueryExecution, 1 GetQueryResults as first page, 2 the same as
 * a later page, 3 BatchGetQueryExecution, 4 StartQueryExecution, 5 an error body); the rest is
 * the body. Besides "never crash", it checks invariants: result rows never carry more cells than
 * sent, a skipped header needs a first page, a parsed execution has a known state.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/athena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body;
    char err[200], code[96], msg[256];
    struct athena_query_execution q;
    struct athena_result_page p;
    struct athena_batch b;
    char *id;

    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    size--;
    switch (data[0] % 6) {
    case 0:
        if (athena_parse_query_execution(body, size, &q, err, sizeof(err)) == 0) {
            if (q.state == ATHENA_STATE_UNKNOWN)
                abort();
            athena_query_execution_clear(&q);
        }
        break;
    case 1:
    case 2:
        if (athena_parse_results(body, size, data[0] % 6 == 1, &p, err, sizeof(err)) == 0) {
            if (p.header_skipped && data[0] % 6 != 1)
                abort();
            for (size_t i = 0; i < p.n_rows; i++)
                if (p.rows[i].n_cells && !p.rows[i].cells)
                    abort();
            for (size_t i = 0; i < p.n_columns; i++)
                if (!p.columns[i].name || !p.columns[i].type)
                    abort();
            athena_result_page_clear(&p);
        } else if (p.rows || p.columns || p.next_token) {
            abort();
        }
        break;
    case 3:
        if (athena_parse_batch(body, size, &b, err, sizeof(err)) == 0)
            athena_batch_clear(&b);
        else if (b.executions || b.unprocessed)
            abort();
        break;
    case 4:
        id = athena_parse_start_response(body, size, err, sizeof(err));
        if (id && !*id)
            abort();
        free(id);
        break;
    default:
        if (athena_parse_error(body, size, code, sizeof(code), msg, sizeof(msg)) == 0 &&
            code[0] == '\0')
            abort();
        break;
    }
    return 0;
}
