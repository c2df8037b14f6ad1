/*
 * health.c: the probes and the spec. GET /healthz answers 200 whenever the process serves
 * HTTP; GET /readyz answers 200 when the job store answers and the worker pool runs (503
 * otherwise); GET /openapi.json serves the OpenAPI document compiled into the binary; GET
 * /metrics renders the Prometheus exposition (server/metrics.h), reading the job store and, for
 * the local engine, the warehouse at scrape time.
 */
#include <stdio.h>
#include <string.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/embedded.h"
#include "server/error.h"
#include "server/metrics.h"
#include "server/sys.h"

enum MHD_Result health_healthz(struct request *req)
{
    return reply_json(req, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"), NULL, NULL);
}

enum MHD_Result health_readyz(struct request *req)
{
    struct app *app = req->app;
    uint64_t counts[JOB_CANCELLED + 1] = {0};
    json_t *jobs;

    if (!app->worker)
        return reply_problem(req, HC_EUNAVAILABLE, "the worker pool is not running");
    if (jobstore_count_by_state(app->jobs, counts) != HC_OK)
        return reply_problem(req, HC_EUNAVAILABLE, "the job store does not answer");
    jobs = json_object();
    for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++)
        json_object_set_new(jobs, job_state_name(s), json_integer((json_int_t)counts[s]));
    return reply_json(req, MHD_HTTP_OK,
                      json_pack("{s:s, s:o, s:I}", "status", "ready", "jobs", jobs, "uptime_s",
                                (json_int_t)((sys_now_ms() - app->started_ms) / 1000)),
                      NULL, NULL);
}

enum MHD_Result health_openapi(struct request *req)
{
    const struct embedded_file *f = embedded_find("openapi.json");

    if (!f)
        return reply_problem(req, HC_ENOTFOUND, "the binary holds no OpenAPI document");
    return reply_static(req, f->data, f->size, "application/json");
}

#define METRICS_MAX (8u << 20) /* cap of one exposition */

enum MHD_Result health_metrics(struct request *req)
{
    struct app *app = req->app;
    char warehouse[4096];
    struct metrics_sources src = {.jobs = app->jobs};
    struct buf out;
    char *text;
    size_t len = 0;

    if (app->cfg && strcmp(app->cfg->engine, "local") == 0 &&
        snprintf(warehouse, sizeof warehouse, "%s/warehouse.db", app->cfg->data_dir) <
            (int)sizeof warehouse)
        src.warehouse_path = warehouse;
    buf_init(&out, METRICS_MAX);
    if (metrics_render(&src, &out) != HC_OK) {
        buf_free(&out);
        return reply_problem(req, HC_ENOMEM, "the metrics did not fit");
    }
    text = buf_steal(&out, &len);
    if (!text)
        return reply_problem(req, HC_ENOMEM, NULL);
    return reply_owned(req, text, len, METRICS_CONTENT_TYPE);
}
