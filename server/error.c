/*
 * error.c: lookups into the HC_ERROR_TABLE of error.h, and the problem document builder.
 */
#include "server/error.h"

#include <stdio.h>
#include <string.h>

struct err_row {
    int status;
    const char *slug;
    int transient;
    const char *title;
};

#define HC_ERR_ROW_(code, status, slug, transient, title) {status, slug, transient, title},
static const struct err_row rows[HC_ERR_COUNT] = {HC_ERROR_TABLE(HC_ERR_ROW_)};
#undef HC_ERR_ROW_

static const struct err_row *row(int err)
{
    return (err >= 0 && err < HC_ERR_COUNT) ? &rows[err] : &rows[HC_EINTERNAL];
}

int hc_err_status(int err)
{
    return row(err)->status;
}

const char *hc_err_slug(int err)
{
    return row(err)->slug;
}

const char *hc_err_title(int err)
{
    return row(err)->title;
}

int hc_err_transient(int err)
{
    return row(err)->transient;
}

int hc_err_from_slug(const char *slug)
{
    for (int i = 0; i < HC_ERR_COUNT; i++)
        if (strcmp(rows[i].slug, slug) == 0)
            return i;
    return -1;
}

json_t *hc_problem_new(int err, const char *detail)
{
    const struct err_row *r = row(err);
    char type[128];
    json_t *doc;

    snprintf(type, sizeof type, "%s%s", HC_PROBLEM_TYPE_BASE, r->slug);
    doc = json_pack("{s:s, s:s, s:i}", "type", type, "title", r->title, "status", r->status);
    if (doc && detail)
        json_object_set_new(doc, "detail", json_string(detail));
    return doc;
}
