/*
 * serve.c: `hcpipe serve`, the HTTP service.
 *
 * Start-up, in order: settings (a bad one exits 2 naming it; so does POST /events without a
 * webhook credential unless --insecure-dev-events, which is then logged as a warning),
 * SIGTERM/SIGINT/SIGHUP blocked in every thread (this thread collects them with sigwait()), the
 * TLS pair and the API tokens (bad ones exit 2 naming the setting), the data dir, the job store
 * (<data_dir>/jobs.db), the engine (local, or athena with its HCPIPE_ATHENA_* settings checked
 * first; S3 as the local engine's store with HCPIPE_SOURCE=s3), the bucket folder store (for the
 * event intake's key check), recovery of jobs that were running when the last process died, the
 * worker pool, one facility_metrics job per --seed so the sample is loaded into the warehouse
 * (an unchanged object is not loaded twice, so a restart with the same seeds costs little;
 * queued before the daemon starts, so a ready service already lists them), and the HTTP daemon.
 * Then one "listening" log line.
 *
 * SIGHUP reloads what can change under a running service: the TLS certificate and key (new
 * handshakes get the new pair; the listener stays open) and the API token list (the inline list
 * plus the file again). A reload that fails is logged and the old state kept.
 *
 * Shutdown on SIGTERM/SIGINT: stop the daemon (it stops accepting, lets running handlers
 * return and closes every connection), stop the workers at a safe point (an interrupted job stays
 * running in the store and is recovered at the next start), free the engine, close the store, exit
 * 0.
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
#include "server/athena_sql.h"
#include "server/engine_athena.h"
#include "server/engine_local.h"
#include "server/error.h"
#include "server/httpd.h"
#include "server/log.h"
#include "server/objstore_s3.h"
#include "server/sys.h"
#include "server/tls.h"

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

/* Where objects come from and results go (HCPIPE_SOURCE, HCPIPE_SOURCE_URI, HCPIPE_OUTPUT_URI). */
struct storage {
    int source_s3;          /* HCPIPE_SOURCE=s3: the local engine reads S3 */
    const char *source_uri; /* dataset prefix (borrowed from the environment), or NULL */
    struct objstore *out;   /* S3 store results are published through, or NULL */
    char *out_bucket;       /* HCPIPE_OUTPUT_URI's bucket... */
    char *out_prefix;       /* ...and prefix ("" or ending in '/') */
};

static const char storage_usage[] =
    "Object sources and result outputs, from the environment:\n"
    "  HCPIPE_SOURCE                 folder | s3: where the local engine reads objects (folder:\n"
    "                                <data-dir>/buckets/<bucket>/<key>; s3: S3 or\n"
    "                                AWS_ENDPOINT_URL_S3, streamed into the parser) (folder)\n"
    "  HCPIPE_SOURCE_URI             s3://bucket/prefix/: with HCPIPE_SOURCE=s3, dataset-scope\n"
    "                                jobs first load every object under it whose ETag changed\n"
    "                                (and forget objects deleted from it)\n"
    "  HCPIPE_OUTPUT_URI             s3://bucket/prefix/: each result is also published as\n"
    "                                <prefix><query>/<job_id>.json and .csv (unset: not "
    "published)\n";

static int storage_load(struct storage *st, int athena, char *err, size_t errlen)
{
    const char *src = getenv("HCPIPE_SOURCE"), *out = getenv("HCPIPE_OUTPUT_URI");
    const char *uri = getenv("HCPIPE_SOURCE_URI");

    memset(st, 0, sizeof *st);
    if (src && *src && strcmp(src, "folder") != 0 && strcmp(src, "s3") != 0) {
        snprintf(err, errlen, "invalid HCPIPE_SOURCE \"%.64s\": expected folder or s3", src);
        return -1;
    }
    st->source_s3 = !athena && src && strcmp(src, "s3") == 0;
    if (st->source_s3 && uri && *uri) {
        if (!athena_sql_location_ok(uri)) {
            snprintf(err, errlen,
                     "invalid HCPIPE_SOURCE_URI \"%.200s\": expected "
                     "s3://bucket/prefix/",
                     uri);
            return -1;
        }
        st->source_uri = uri;
    }
    if (out && *out) {
        const char *b = out + 5, *slash = strchr(b, '/');

        if (!athena_sql_location_ok(out) || !slash) {
            snprintf(err, errlen,
                     "invalid HCPIPE_OUTPUT_URI \"%.200s\": expected "
                     "s3://bucket/prefix/ (a valid bucket; a prefix ending in / of A-Z a-z 0-9 "
                     "! - _ . * ( ) /)",
                     out);
            return -1;
        }
        st->out_bucket = strndup(b, (size_t)(slash - b));
        st->out_prefix = strdup(slash + 1);
        if (!st->out_bucket || !st->out_prefix || objstore_s3_new(&st->out) != HC_OK) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void storage_free(struct storage *st)
{
    objstore_destroy(st->out);
    free(st->out_bucket);
    free(st->out_prefix);
}

/* worker_config.publish: copies result.json and result.csv to the output location. */
static int publish_result(void *ctx, const struct job *job, const char *dir)
{
    static const char *const ext[2] = {"json", "csv"};
    static const char *const type[2] = {"application/json", "text/csv; charset=utf-8"};
    struct storage *st = ctx;
    char key[2048], path[4096];
    int err = HC_OK;

    for (int i = 0; i < 2 && !err; i++) {
        snprintf(key, sizeof key, "%s%s/%s.%s", st->out_prefix, job->query, job->id, ext[i]);
        snprintf(path, sizeof path, "%s/result.%s", dir, ext[i]);
        err = objstore_s3_put_file(st->out, st->out_bucket, key, path, type[i]);
    }
    if (err)
        log_error("publishing the result failed", "job_id", job->id, "bucket", st->out_bucket,
                  "error", hc_err_slug(err), NULL);
    else
        log_info("result published", "job_id", job->id, "bucket", st->out_bucket, "prefix",
                 st->out_prefix, NULL);
    return err == HC_EFORBIDDEN || err == HC_ESOURCEMISSING ? HC_EUNAVAILABLE : err;
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

/* SIGHUP: the certificate and the token list again. */
static void reload(const struct config *cfg, struct tls *tls, struct auth *auth)
{
    char err[512], subject[256], not_after[32], count[24];
    struct auth *fresh = NULL;

    if (tls) {
        if (tls_reload(tls, err, sizeof err) == HC_OK) {
            tls_describe(tls, subject, sizeof subject, not_after, sizeof not_after);
            log_info("TLS certificate reloaded", "subject", subject, "not_after", not_after, NULL);
        } else {
            log_error("TLS reload failed; the old certificate stays", "error", err, NULL);
        }
    }
    if (auth_load(cfg->api_tokens, cfg->api_tokens_file, &fresh, err, sizeof err) == HC_OK) {
        snprintf(count, sizeof count, "%zu", auth_count(fresh));
        auth_replace(auth, fresh);
        log_info("API tokens reloaded", "tokens", count, NULL);
    } else {
        log_error("API token reload failed; the old tokens stay", "error", err, NULL);
    }
}

/* Loads the TLS pair and the token list; a failure is printed naming the setting. */
static int edge_load(const struct config *cfg, struct tls **tls, struct auth **auth)
{
    char err[512], subject[256], not_after[32], count[24];
    int e;

    if (cfg->tls_cert) {
        e = tls_load(cfg->tls_cert, cfg->tls_key, tls, err, sizeof err);
        if (e != HC_OK) {
            fprintf(stderr,
                    "hcpipe: invalid --tls-cert/--tls-key (HCPIPE_TLS_CERT/HCPIPE_TLS_KEY): %s\n",
                    err);
            return -1;
        }
        tls_describe(*tls, subject, sizeof subject, not_after, sizeof not_after);
        log_info("TLS on", "subject", subject, "not_after", not_after, NULL);
    }
    e = auth_load(cfg->api_tokens, cfg->api_tokens_file, auth, err, sizeof err);
    if (e != HC_OK) {
        fprintf(stderr,
                "hcpipe: invalid --api-tokens/--api-tokens-file (HCPIPE_API_TOKENS/"
                "HCPIPE_API_TOKENS_FILE): %s\n",
                err);
        return -1;
    }
    snprintf(count, sizeof count, "%zu", auth_count(*auth));
    if (auth_count(*auth) == 0)
        log_warn("no API tokens configured (HCPIPE_API_TOKENS): the jobs API is open to anyone "
                 "who can reach it",
                 NULL);
    else
        log_info("API tokens loaded", "tokens", count, "metrics_auth",
                 cfg->metrics_auth ? "on" : "off", NULL);
    return 0;
}

int serve_main(int argc, char **argv)
{
    struct config cfg;
    struct app app = {0};
    struct jobstore *js = NULL;
    struct engine *engine = NULL;
    struct worker *worker = NULL;
    struct httpd *httpd = NULL;
    struct tls *tls = NULL;
    struct auth *auth = NULL;
    struct objstore *objects = NULL;
    struct worker_config wcfg;
    char err[512], path[4096], results[4096], listen[96], nworkers[16];
    sigset_t sigs;
    struct athena_settings aset = {0};
    struct storage storage = {0};
    int rc = 1, sig = 0, recovered = 0, athena = 0, e;

    e = config_load(&cfg, argc, argv, err, sizeof err);
    if (e != 0) {
        if (e > 0) {
            fputs(config_usage(), stdout);
            fputs("\n", stdout);
            fputs(engine_athena_usage(), stdout);
            fputs("\n", stdout);
            fputs(storage_usage, stdout);
        } else
            fprintf(stderr, "hcpipe: %s\n", err);
        config_free(&cfg);
        return e > 0 ? 0 : 2;
    }
    log_set_level((enum log_level)log_level_parse(cfg.log_level));
    if (strcmp(cfg.engine, "athena") == 0) {
        athena = 1;
        if (engine_athena_settings_load(&aset, err, sizeof err) != 0) {
            fprintf(stderr, "hcpipe: athena engine: %s\n", err);
            engine_athena_settings_free(&aset);
            config_free(&cfg);
            return 2;
        }
    }

    if (storage_load(&storage, athena, err, sizeof err) != 0) {
        fprintf(stderr, "hcpipe: %s\n", err);
        storage_free(&storage);
        engine_athena_settings_free(&aset);
        config_free(&cfg);
        return 2;
    }

    if (!cfg.webhook_api_key && !cfg.webhook_basic && !cfg.insecure_dev_events) {
        fprintf(stderr, "hcpipe: POST /events has no credential: set HCPIPE_WEBHOOK_API_KEY "
                        "(--webhook-api-key) or HCPIPE_WEBHOOK_BASIC (--webhook-basic), or pass "
                        "--insecure-dev-events for development only\n");
        config_free(&cfg);
        return 2;
    }

    /* Block the stop signals before any thread exists, so every thread inherits the mask and
     * only sigwait() below sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (edge_load(&cfg, &tls, &auth) != 0) {
        rc = 2;
        goto out;
    }
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
    e = athena ? engine_athena_new(cfg.data_dir, &aset, &engine)
               : engine_local_new(cfg.data_dir, &engine);
    if (e != HC_OK) {
        log_error("cannot start the engine", "engine", cfg.engine, "error", hc_err_slug(e), NULL);
        goto out;
    }
    snprintf(path, sizeof path, "%s/buckets", cfg.data_dir);
    e = objstore_folder_new(path, &objects);
    if (e != HC_OK) {
        log_error("cannot open the bucket folder", "path", path, "error", hc_err_slug(e), NULL);
        goto out;
    }
    if (storage.source_s3) {
        struct objstore *store = NULL;

        e = objstore_s3_new(&store);
        if (e == HC_OK)
            e = engine_local_set_store(engine, store, storage.source_uri);
        if (e != HC_OK) {
            objstore_destroy(store);
            log_error("cannot use S3 as the object store", "error", hc_err_slug(e), NULL);
            goto out;
        }
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
                                  .results_dir = results,
                                  .requeue_delay_ms =
                                      athena ? engine_athena_requeue_delay_ms(engine) : 0,
                                  .publish = storage.out ? publish_result : NULL,
                                  .publish_ctx = &storage};
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
                       .started_ms = sys_now_ms(),
                       .objects = objects,
                       .auth = auth,
                       .tls = tls};
    queue_seeds(&cfg, js, worker); /* before /readyz can answer, so a ready service lists them */
    /* Warned before the port opens, so nobody can reach the open door before the log says so. */
    if (!cfg.webhook_api_key && !cfg.webhook_basic)
        log_warn("INSECURE: POST /events accepts events from ANYONE (--insecure-dev-events, no "
                 "HCPIPE_WEBHOOK_API_KEY or HCPIPE_WEBHOOK_BASIC); never run this way in "
                 "production",
                 NULL);
    if (httpd_start(&app, &httpd) != HC_OK)
        goto out;

    snprintf(listen, sizeof listen, cfg.listen_ipv6 ? "[%s]:%d" : "%s:%d", cfg.listen_host,
             httpd_port(httpd));
    snprintf(nworkers, sizeof nworkers, "%d", cfg.workers);
    snprintf(err, sizeof err, "%d", recovered);
    log_info("hcpipe listening", "listen", listen, "scheme", tls ? "https" : "http", "data_dir",
             cfg.data_dir, "engine", cfg.engine, "workers", nworkers, "recovered_jobs", err,
             "version", HCPIPE_VERSION, NULL);

    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        reload(&cfg, tls, auth);
    }
    log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    rc = 0;
out:
    httpd_stop(httpd);
    if (worker)
        worker_stop(worker);
    if (engine)
        engine->ops->destroy(engine);
    if (js)
        jobstore_close(js);
    objstore_destroy(objects);
    tls_free(tls);
    auth_free(auth);
    if (rc == 0)
        log_info("stopped", NULL);
    storage_free(&storage);
    engine_athena_settings_free(&aset);
    config_free(&cfg);
    return rc;
}
