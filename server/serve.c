/*
 * serve.c: `hcpipe serve`, the HTTP service.
 *
 * Start-up, in order: settings (a bad one exits 2 naming it), SIGTERM/SIGINT blocked in every
 * thread (this thread collects them with sigwait()), the data dir, the job store
 * (<data_dir>/jobs.db), the engine, recovery of jobs that were running when the last process
 * died, the worker pool, one facility_metrics job per --seed so the sample is loaded into the
 * warehouse, and the HTTP daemon (an unchanged object is not loaded twice, so a restart with the
 * same seeds costs little). Then one "listening" log line.
 *
 * Shutdown on SIGTERM/SIGINT: stop accepting (quiesce), finish the requests in flight and stop
 * the daemon, stop the workers at a safe point (an interrupted job stays running in the store
 * and is recovered at the next start), free the engine, close the store, exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "routes/routes.h"
#include "server/app.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/httpd.h"
#include "server/log.h"
#include "server/sys.h"

/* mkdir -p for one path. */
static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Queues one facility_metrics job per seed source (dataset scope: the object is loaded first). */
static void queue_seeds(const struct config *cfg, struct jobstore *js, struct worker *w)
{
    for (size_t i = 0; i < cfg->n_seeds; i++) {
        struct job_spec spec = {.query = "facility_metrics",
                                .source = cfg->seeds[i],
                                .scope = SCOPE_DATASET,
                                .on_bad_record = BAD_RECORD_FAIL,
                                .engine = cfg->engine};
        struct job *job = NULL;
        int err = jobstore_insert(js, &spec, &job);

        if (err != HC_OK) {
            log_error("seed job not queued", "source", cfg->seeds[i], "error", hc_err_slug(err),
                      NULL);
            continue;
        }
        log_info("seed job queued", "job_id", job->id, "source", cfg->seeds[i], NULL);
        job_free(job);
    }
    if (cfg->n_seeds)
        worker_wake(w);
}

int serve_main(int argc, char **argv)
{
    struct config cfg;
    struct app app = {0};
    struct jobstore *js = NULL;
    struct engine *engine = NULL;
    struct worker *worker = NULL;
    struct httpd *httpd = NULL;
    struct worker_config wcfg;
    char err[512], path[4096], results[4096], listen[96], nworkers[16];
    sigset_t sigs;
    int rc = 1, sig = 0, recovered = 0, e;

    e = config_load(&cfg, argc, argv, err, sizeof err);
    if (e != 0) {
        if (e > 0)
            fputs(config_usage(), stdout);
        else
            fprintf(stderr, "hcpipe: %s\n", err);
        config_free(&cfg);
        return e > 0 ? 0 : 2;
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    if (strcmp(cfg.engine, "local") != 0) {
        fprintf(stderr,
                "hcpipe: invalid engine \"%s\" (--engine/HCPIPE_ENGINE): not available in this "
                "build yet; use local\n",
                cfg.engine);
        config_free(&cfg);
        return 2;
    }

    /* Block the stop signals before any thread exists, so every thread inherits the mask and
     * only sigwait() below sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    snprintf(results, sizeof results, "%s/results", cfg.data_dir);
    if (mkdir_p(cfg.data_dir) != 0 || mkdir_p(results) != 0) {
        log_error("cannot create the data dir", "data_dir", cfg.data_dir, "error", strerror(errno),
                  NULL);
        goto out;
    }
    snprintf(path, sizeof path, "%s/jobs.db", cfg.data_dir);
    e = jobstore_open(path, &js);
    if (e != HC_OK) {
        log_error("cannot open the job store", "path", path, "error", hc_err_slug(e), NULL);
        goto out;
    }
    e = engine_local_new(cfg.data_dir, &engine);
    if (e != HC_OK) {
        log_error("cannot start the engine", "engine", cfg.engine, "error", hc_err_slug(e), NULL);
        goto out;
    }
    e = jobstore_recover(js, &recovered);
    if (e != HC_OK) {
        log_error("cannot recover jobs", "error", hc_err_slug(e), NULL);
        goto out;
    }
    wcfg = (struct worker_config){.threads = cfg.workers,
                                  .max_attempts = cfg.max_attempts,
                                  .job_timeout_s = cfg.job_timeout_s,
                                  .backoff_base_ms = 1000,
                                  .backoff_cap_ms = 60000,
                                  .results_dir = results};
    e = worker_start(js, engine, &wcfg, &worker);
    if (e != HC_OK) {
        log_error("cannot start the workers", "error", hc_err_slug(e), NULL);
        goto out;
    }
    app = (struct app){.cfg = &cfg,
                       .jobs = js,
                       .engine = engine,
                       .worker = worker,
                       .results_dir = results,
                       .started_ms = sys_now_ms()};
    /* Seeds are queued before the API answers, so the first GET /jobs already lists them. */
    queue_seeds(&cfg, js, worker);
    if (httpd_start(&app, &httpd) != HC_OK)
        goto out;

    snprintf(listen, sizeof listen, cfg.listen_ipv6 ? "[%s]:%d" : "%s:%d", cfg.listen_host,
             httpd_port(httpd));
    snprintf(nworkers, sizeof nworkers, "%d", cfg.workers);
    snprintf(err, sizeof err, "%d", recovered);
    log_info("hcpipe listening", "listen", listen, "data_dir", cfg.data_dir, "engine", cfg.engine,
             "workers", nworkers, "recovered_jobs", err, "version", HCPIPE_VERSION, NULL);

    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    rc = 0;
out:
    httpd_quiesce(httpd);
    httpd_stop(httpd);
    if (worker)
        worker_stop(worker);
    if (engine)
        engine->ops->destroy(engine);
    if (js)
        jobstore_close(js);
    if (rc == 0)
        log_info("stopped", NULL);
    config_free(&cfg);
    return rc;
}
