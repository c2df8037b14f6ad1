/*
 * libFuzzer target: the route matcher and the parsing of what a URL carries (routes/routes.c,
 * the job listing's query parameters in server/jobstore.c).
 *
 * Input: first byte picks the method, the rest is a URL "path[?query]". The path goes through
 * routes_match(): a match must give back the path when its parameters are put into the pattern,
 * and parameters are non-empty single segments; no match with an Allow list must still name a
 * route of that path. The query is split on '&' and '='; `state`, `limit` and `cursor` go through
 * job_state_parse() and jobstore_list() on a small store (cursor decoding, SQL binding), and a
 * matched {id} through jobstore_get(). Every outcome must be a documented error code.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routes/routes.h"
#include "server/error.h"
#include "server/jobstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jobstore *store;

static struct jobstore *get_store(void)
{
    char path[] = "/tmp/fuzz_routes_XXXXXX";
    int fd;

    if (store)
        return store;
    fd = mkstemp(path);
    if (fd < 0)
        abort();
    close(fd);
    if (jobstore_open(path, &store) != HC_OK)
        abort();
    unlink(path);
    for (int i = 0; i < 5; i++) {
        struct job_spec spec = {.query = "facility_metrics", .engine = "local"};
        struct job *job = NULL;
        if (jobstore_insert(store, &spec, &job) != HC_OK)
            abort();
        job_free(job);
    }
    return store;
}

/* The path rebuilt from the route's pattern and the parameters must be the path. */
static void check_rebuild(const struct route *r, const char *path,
                          char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX], size_t n)
{
    char out[4096];
    size_t o = 0, k = 0;

    for (const char *p = r->path; *p;) {
        if (*p == '{') {
            const char *v = params[k++];
            if (k > n || !*v || strchr(v, '/'))
                abort();
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", v);
            p = strchr(p, '}') + 1;
        } else {
            out[o++] = *p++;
        }
        if (o >= sizeof out - 1)
            abort();
    }
    out[o] = '\0';
    if (k != n || strcmp(out, path) != 0)
        abort();
}

static void list_with(const char *state, const char *limit, const char *cursor)
{
    struct job_filter f = {.state = -1, .limit = 3};
    struct job **jobs = NULL;
    char *next = NULL;
    size_t n = 0;
    int rc;

    if (state)
        f.state = job_state_parse(state);
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (*limit && !*end && v >= 1 && v <= 1000)
            f.limit = (size_t)v;
    }
    f.cursor = cursor && *cursor ? cursor : NULL;
    rc = jobstore_list(get_store(), &f, &jobs, &n, &next);
    if (rc != HC_OK && rc != HC_EVALIDATION)
        abort();
    if (rc == HC_OK && n > f.limit)
        abort();
    for (size_t i = 0; i < n; i++)
        job_free(jobs[i]);
    free(jobs);
    /* A cursor the store made must be accepted. */
    if (next) {
        f.cursor = next;
        jobs = NULL;
        n = 0;
        char *next2 = NULL;
        if (jobstore_list(get_store(), &f, &jobs, &n, &next2) != HC_OK)
            abort();
        for (size_t i = 0; i < n; i++)
            job_free(jobs[i]);
        free(jobs);
        free(next2);
        free(next);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"};
    char params[HTTPD_MAX_PARAMS][HTTPD_PARAM_MAX], allow[64];
    const struct route *route = NULL;
    const char *state = NULL, *limit = NULL, *cursor = NULL, *method;
    char *url, *query;
    size_t n_params = 99;

    if (size == 0 || size > 4096)
        return 0;
    method = methods[data[0] % 6];
    url = malloc(size);
    if (!url)
        return 0;
    memcpy(url, data + 1, size - 1);
    url[size - 1] = '\0';
    query = strchr(url, '?');
    if (query)
        *query++ = '\0';

    if (routes_match(method, url, &route, params, &n_params, allow, sizeof allow)) {
        const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
        if (!route || strcmp(route->method, m) != 0 || n_params > HTTPD_MAX_PARAMS)
            abort();
        check_rebuild(route, url, params, n_params);
        if (n_params) {
            struct job *job = NULL;
            int rc = jobstore_get(get_store(), params[0], &job);
            if (rc != HC_OK && rc != HC_EJOBNOTFOUND)
                abort();
            if (rc == HC_OK && strcmp(job->id, params[0]) != 0)
                abort();
            job_free(job);
        }
    } else {
        if (route || n_params != 0)
            abort();
        /* 405 only for a path some route takes with another method. */
        if (allow[0] && !strstr(allow, "GET") && !strstr(allow, "POST"))
            abort();
    }

    for (char *kv = query, *amp; kv; kv = amp) {
        char *eq;
        amp = strchr(kv, '&');
        if (amp)
            *amp++ = '\0';
        eq = strchr(kv, '=');
        if (!eq)
            continue;
        *eq++ = '\0';
        if (strcmp(kv, "state") == 0)
            state = eq;
        else if (strcmp(kv, "limit") == 0)
            limit = eq;
        else if (strcmp(kv, "cursor") == 0)
            cursor = eq;
    }
    if (state || limit || cursor)
        list_with(state, limit, cursor);
    free(url);
    return 0;
}
