/*
 * app: the running service's shared parts, handed to every route handler (borrowed).
 */
#ifndef HCPIPE_APP_H
#define HCPIPE_APP_H

#include "server/auth.h"
#include "server/config.h"
#include "server/engine.h"
#include "server/jobstore.h"
#include "server/objstore.h"
#include "server/worker.h"

struct app {
    const struct config *cfg;
    struct jobstore *jobs;
    struct engine *engine;
    struct worker *worker;
    const char *results_dir;  /* <data_dir>/results */
    int64_t started_ms;       /* wall clock at start */
    struct objstore *objects; /* <data_dir>/buckets: POST /events checks there which form of an
                                 event's key exists (a local stat; NULL: no check) */
    struct auth *auth;        /* API tokens; NULL or empty: the API is open */
    struct tls *tls;          /* HTTPS certificate (server/tls.h), or NULL for plain HTTP */
};

#endif
