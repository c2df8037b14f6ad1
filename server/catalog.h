/*
 * catalog: the pipeline's queries and their output columns (names and types are API and the same
 * on every engine). engine.h's engine_query_known()/engine_query_names() are implemented here.
 */
#ifndef HCPIPE_CATALOG_H
#define HCPIPE_CATALOG_H

#include <stddef.h>

#include "server/result.h"

struct catalog_query {
    const char *name;             /* e.g. "accredited_by_state" */
    const struct column *columns; /* ncols output columns, in order */
    size_t ncols;
    const char *local_sql; /* embedded file name of the local (SQLite) text */
};

/* The query named `name`, or NULL (borrowed, static). */
const struct catalog_query *catalog_find(const char *name);

#endif
