/*
 * catalog.c: the table of catalog queries (see catalog.h) and the engine.h lookups over it.
 */
#include "server/catalog.h"

#include <string.h>

#include "server/engine.h"

static const struct column facility_metrics_cols[] = {
    {"facility_id", COL_VARCHAR},
    {"facility_name", COL_VARCHAR},
    {"employee_count", COL_BIGINT},
    {"number_of_offered_services", COL_BIGINT},
    {"expiry_date_of_first_accreditation", COL_DATE},
};

static const struct column accredited_by_state_cols[] = {
    {"state", COL_VARCHAR},
    {"facility_count", COL_BIGINT},
    {"total_employees", COL_BIGINT},
    {"valid_accreditations", COL_BIGINT},
};

static const struct column expiring_accreditations_cols[] = {
    {"facility_id", COL_VARCHAR},        {"facility_name", COL_VARCHAR}, {"state", COL_VARCHAR},
    {"accreditation_body", COL_VARCHAR}, {"valid_until", COL_DATE},      {"days_left", COL_BIGINT},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct catalog_query queries[] = {
    {"facility_metrics", facility_metrics_cols, N(facility_metrics_cols),
     "sql/local/facility_metrics.sql"},
    {"accredited_by_state", accredited_by_state_cols, N(accredited_by_state_cols),
     "sql/local/accredited_by_state.sql"},
    {"expiring_accreditations", expiring_accreditations_cols, N(expiring_accreditations_cols),
     "sql/local/expiring_accreditations.sql"},
};

static const char *const names[] = {"facility_metrics", "accredited_by_state",
                                    "expiring_accreditations", NULL};

const struct catalog_query *catalog_find(const char *name)
{
    for (size_t i = 0; name && i < N(queries); i++)
        if (strcmp(queries[i].name, name) == 0)
            return &queries[i];
    return NULL;
}

int engine_query_known(const char *name)
{
    return catalog_find(name) != NULL;
}

const char *const *engine_query_names(void)
{
    return names;
}
