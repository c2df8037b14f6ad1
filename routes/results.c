/*
 * results.c: GET /jobs/{id}/result.json and /result.csv, served as files from
 * <data_dir>/results/<id>/ (written atomically by the worker's result writer) with
 * Content-Length, ETag, If-None-Match -> 304 and HEAD. A job that has not succeeded answers
 * 409 result-not-ready, saying why.
 */
#include <stdio.h>
#include <string.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/error.h"

static enum MHD_Result serve_result(struct request *req, const char *file, const char *ctype)
{
    struct job *job = NULL;
    char path[4096], detail[200];
    int err = jobstore_get(req->app->jobs, req->params[0], &job);

    if (err != HC_OK)
        return reply_problem(req, err, NULL);
    if (job->state != JOB_SUCCEEDED) {
        switch (job->state) {
        case JOB_FAILED:
        case JOB_DEAD:
            snprintf(detail, sizeof detail,
                     "the job is %s and has no result; see its error, or POST /jobs/%s/retry",
                     job_state_name(job->state), job->id);
            break;
        case JOB_CANCELLED:
            snprintf(detail, sizeof detail, "the job was cancelled and has no result");
            break;
        default:
            snprintf(detail, sizeof detail, "the job is %s; try again once it has succeeded",
                     job_state_name(job->state));
        }
        job_free(job);
        return reply_problem(req, HC_ENOTREADY, detail);
    }
    snprintf(path, sizeof path, "%s/%s/%s", req->app->results_dir, job->id, file);
    job_free(job);
    return reply_file(req, path, ctype, HC_EIO);
}

enum MHD_Result results_json(struct request *req)
{
    return serve_result(req, "result.json", "application/json");
}

enum MHD_Result results_csv(struct request *req)
{
    return serve_result(req, "result.csv", "text/csv; charset=utf-8; header=present");
}
