/*
 * libFuzzer target: the S3 event payload parser (server/event.c). Any input must parse or be
 * rejected with a reason; an accepted batch must hold well-formed events.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/error.h"
#include "server/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct event_batch b;
    char err[256];
    int rc = event_parse((const char *)data, size, &b, err, sizeof err);

    if (rc == HC_OK) {
        for (size_t i = 0; i < b.n_events; i++) {
            const struct object_event *ev = &b.events[i];

            if (!ev->bucket || !ev->key || !ev->raw_key || !ev->dedup_id || !*ev->key)
                abort();
            if (ev->size < -1)
                abort();
        }
        if (b.n_events == 0 && !b.ignored)
            abort();
        event_batch_free(&b);
    } else if (rc != HC_EJSON && rc != HC_EBADEVENT && rc != HC_ENOMEM) {
        abort();
    } else if (!err[0] || b.events) {
        abort();
    }
    return 0;
}
